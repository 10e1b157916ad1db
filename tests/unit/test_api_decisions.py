"""Pure decisions of the REST layer: waits, preferences, dates, routes, tenants, sizes, problem details."""

from __future__ import annotations

import base64
import json
import math

import pytest

from taskcast.api.app import body_size, too_large
from taskcast.api.idempotency import key_refusal
from taskcast.api.openapi import as_problem_responses
from taskcast.api.problems import describe_validation
from taskcast.api.request_info import header_values, tenant_of
from taskcast.api.routing import rule_pattern
from taskcast.api.waiting import clamp_wait, format_seconds, hold, http_date, parse_prefer_wait


@pytest.mark.parametrize(
    ("requested", "maximum", "remaining", "expected"),
    [
        (None, 25, math.inf, 0),
        (0, 25, math.inf, 0),
        (-3, 25, math.inf, 0),
        (math.nan, 25, math.inf, 0),
        (10, 25, math.inf, 10),
        (60, 25, math.inf, 25),
        (0.3, 25, math.inf, 0.3),
        (20, 25, 12, 10),  # leaves 2 s of the invocation for answering
        (20, 25, 1, 0),
    ],
)
def test_clamp_wait(requested, maximum, remaining, expected) -> None:
    assert clamp_wait(requested, maximum, remaining) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["wait=10"], 10.0),
        (["respond-async, wait=5"], 5.0),
        (["respond-async", "wait=2.5"], 2.5),
        (["wait = 7 ; ignored=param"], 7.0),
        (['WAIT="3"'], 3.0),
        (["wait=soon"], None),
        (["wait=-1"], None),
        (["return=minimal"], None),
    ],
)
def test_parse_prefer_wait(values, expected) -> None:
    assert parse_prefer_wait(values) == expected


def test_format_seconds_and_http_date() -> None:
    assert format_seconds(5.0) == "5"
    assert format_seconds(2.5) == "2.5"
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def test_hold_stops_when_done() -> None:
    time = FakeTime()
    values = iter([1, 1, 2, 3])
    result = hold(lambda: next(values), lambda v: v != 1, 10, 0.5, initial=1, sleep=time.sleep, clock=time.clock)
    assert result == 2
    assert time.sleeps == [0.5, 0.5, 0.5]


def test_hold_gives_up_at_the_deadline_with_a_last_read() -> None:
    time = FakeTime()
    reads: list[float] = []

    def read() -> int:
        reads.append(time.now)
        return 1

    assert hold(read, lambda v: v != 1, 1.2, 0.5, initial=1, sleep=time.sleep, clock=time.clock) == 1
    assert time.sleeps == [0.5, 0.5, pytest.approx(0.2)]
    assert reads[-1] == pytest.approx(1.2)


def test_hold_on_a_vanished_value_returns_none_and_never_waits_when_already_done() -> None:
    time = FakeTime()
    assert hold(lambda: None, lambda v: False, 5, 1, initial=1, sleep=time.sleep, clock=time.clock) is None
    time = FakeTime()
    assert hold(lambda: 9, lambda v: True, 5, 1, initial=1, sleep=time.sleep, clock=time.clock) == 1
    assert time.sleeps == []


def test_rule_pattern_matches_one_segment_per_parameter() -> None:
    pattern = rule_pattern("/tasks/<task_id>/result")
    assert pattern.match("/tasks/abc-1/result")
    assert not pattern.match("/tasks/a/b/result")
    assert not pattern.match("/tasks/abc/result/x")
    assert rule_pattern("/tasks").match("/tasks")


def test_tenant_of_reads_only_a_non_empty_string() -> None:
    assert tenant_of({"requestContext": {"authorizer": {"tenant": "acme", "principalId": "acme"}}}) == "acme"
    for context in [
        {},
        {"authorizer": None},
        {"authorizer": {"claims": None}},
        {"authorizer": {"tenant": ""}},
        {"authorizer": {"tenant": 5}},
    ]:
        assert tenant_of({"requestContext": context}) is None
    assert tenant_of({}) is None


def test_header_values_are_case_insensitive_and_multi_valued() -> None:
    event = {"headers": {"prefer": "wait=1"}, "multiValueHeaders": {"Prefer": ["respond-async", "wait=1"]}}
    assert header_values(event, "PREFER") == ["respond-async", "wait=1"]
    assert header_values({"headers": {"Idempotency-Key": "k"}, "multiValueHeaders": None}, "idempotency-key") == ["k"]
    assert header_values({"headers": None}, "x") == []


def test_body_size_counts_bytes_and_decoded_base64() -> None:
    assert body_size({"body": None}) == 0
    assert body_size({"body": "é"}) == 2
    raw = b"x" * 1000
    assert body_size({"body": base64.b64encode(raw).decode(), "isBase64Encoded": True}) == 1000
    assert too_large({"body": "x" * 10}, 10) is None
    answer = too_large({"body": "x" * 11}, 10)
    assert answer["statusCode"] == 413
    assert answer["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    assert "POST /uploads" in json.loads(answer["body"])["detail"]


def test_describe_validation_hides_the_input_and_names_bad_json() -> None:
    detail, listed = describe_validation(
        [{"type": "missing", "loc": ("body", "type"), "msg": "Field required", "input": {"secret": "x"}}]
    )
    assert detail == "body.type: Field required"
    assert listed == [{"location": "body.type", "message": "Field required"}]
    detail, _ = describe_validation([{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error"}])
    assert detail == "The request body is not valid JSON."


def test_key_refusal() -> None:
    assert key_refusal("order-1") is None
    assert key_refusal("") and key_refusal("k" * 256) and key_refusal("bad\nkey")


def test_as_problem_responses_rewrites_generated_422() -> None:
    generated = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}
    own = {"description": "Idempotency-Key reused", "content": {}}
    schema = {
        "paths": {"/a": {"get": {"responses": {"422": generated}}}, "/b": {"post": {"responses": {"422": own}}}},
        "components": {"schemas": {"HTTPValidationError": {}, "ValidationError": {}, "Problem": {}}},
    }
    fixed = as_problem_responses(schema)
    assert set(fixed["paths"]["/a"]["get"]["responses"]) == {"400"}
    assert fixed["paths"]["/b"]["post"]["responses"]["422"] is own
    assert set(fixed["components"]["schemas"]) == {"Problem"}
