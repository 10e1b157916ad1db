"""Reading client frames: every bad message is refused with a code and a readable message (pure)."""

from __future__ import annotations

import pytest

from taskcast.push.commands import Command, Refusal, parse_command


@pytest.mark.parametrize(
    ("body", "route_key", "expected"),
    [
        ('{"action": "ping"}', "ping", Command("ping")),
        ('{"action": "subscribe", "task_id": "t-1"}', "subscribe", Command("subscribe", "t-1")),
        ('{"action": "subscribe", "task_id": "t-1", "since_version": 0}', "subscribe", Command("subscribe", "t-1", 0)),
        ('{"action": "subscribe", "task_id": "t-1", "since_version": 4}', "subscribe", Command("subscribe", "t-1", 4)),
        ('{"action": "unsubscribe", "task_id": "t-1", "since_version": 4}', "unsubscribe", Command("unsubscribe", "t-1")),  # noqa: E501
        ('{"action": "ping", "extra": [1]}', "ping", Command("ping")),
    ],
)
def test_valid_commands(body: str, route_key: str, expected: Command) -> None:
    assert parse_command(route_key, body) == expected


@pytest.mark.parametrize(
    ("body", "route_key", "code"),
    [
        ("{not json", "$default", "invalid_json"),
        ("[1, 2]", "$default", "invalid_message"),
        ('"subscribe"', "$default", "invalid_message"),
        ("null", "$default", "invalid_message"),
        ('{"task_id": "t-1"}', "$default", "invalid_message"),
        ('{"action": 7}', "$default", "invalid_message"),
        ('{"action": "dance"}', "$default", "unknown_action"),
        ('{"action": "' + "a" * 500 + '"}', "$default", "unknown_action"),
        ('{"action": "subscribe"}', "subscribe", "invalid_task_id"),
        ('{"action": "subscribe", "task_id": 12}', "subscribe", "invalid_task_id"),
        ('{"action": "subscribe", "task_id": "../etc"}', "subscribe", "invalid_task_id"),
        ('{"action": "subscribe", "task_id": "' + "a" * 200 + '"}', "subscribe", "invalid_task_id"),
        ('{"action": "subscribe", "task_id": "t-1", "since_version": -1}', "subscribe", "invalid_since_version"),
        ('{"action": "subscribe", "task_id": "t-1", "since_version": "3"}', "subscribe", "invalid_since_version"),
        ('{"action": "subscribe", "task_id": "t-1", "since_version": true}', "subscribe", "invalid_since_version"),
        ('{"action": "subscribe", "task_id": "t-1", "since_version": 1.5}', "subscribe", "invalid_since_version"),
        ('{"action": "unsubscribe", "task_id": ""}', "unsubscribe", "invalid_task_id"),
        ("", "$default", "invalid_message"),
        ("   ", "$default", "invalid_message"),
        (None, "$default", "invalid_message"),
        ("[" * 100_000, "$default", "message_too_large"),
        ("[" * 20_000, "$default", "nesting_limit_exceeded"),
        ('{"action": "ping", "x": ' + "[" * 64 + "]" * 64 + "}", "$default", "nesting_limit_exceeded"),
        ("x" * (40 * 1024), "$default", "message_too_large"),
    ],
)
def test_bad_messages_are_refused_with_a_code(body: str | None, route_key: str, code: str) -> None:
    refusal = parse_command(route_key, body)
    assert isinstance(refusal, Refusal)
    assert refusal.code == code
    message = refusal.as_message()
    assert message["type"] == "error" and message["code"] == code
    assert message["message"] and len(message["message"]) < 200


def test_binary_frames_are_refused() -> None:
    refusal = parse_command("$default", "AAEC", is_base64=True)
    assert isinstance(refusal, Refusal) and refusal.code == "binary_not_supported"


def test_refusal_names_the_task_when_known() -> None:
    refusal = parse_command("subscribe", '{"action": "subscribe", "task_id": "t-1", "since_version": -2}')
    assert isinstance(refusal, Refusal)
    assert refusal.as_message()["task_id"] == "t-1"
