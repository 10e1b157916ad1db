"""Webhook outcome decisions, delays, hops and the signed format: pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from taskcast.webhooks.format import (
    SQS_MAX_DELAY_S,
    AttemptResult,
    BadJob,
    Decision,
    WebhookJob,
    decide,
    early_by,
    hop_needed,
    parse_retry_after,
    signed_headers,
    sqs_delay,
    webhook_body,
    webhook_id,
)

SCHEDULE = (5.0, 300.0, 1800.0)
SECRET = "whsec_" + "c2VjcmV0LW9uZS0wMTIzNDU2Nzg5"
OTHER = "whsec_" + "c2VjcmV0LXR3by05ODc2NTQzMjE="


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(code: int) -> None:
    assert decide(AttemptResult(code), 1, SCHEDULE) == Decision("delivered")
    assert decide(AttemptResult(code), 4, SCHEDULE) == Decision("delivered")


def test_410_disables_the_callback() -> None:
    assert decide(AttemptResult(410), 2, SCHEDULE) == Decision("disabled")


@pytest.mark.parametrize(
    "result",
    [
        AttemptResult(301, "redirect"),
        AttemptResult(302, "redirect"),
        AttemptResult(307, "redirect"),
        AttemptResult(400),
        AttemptResult(404),
        AttemptResult(500),
        AttemptResult(502),
        AttemptResult(None, "timeout: no answer within 15 s"),
        AttemptResult(None, "refused: 10.0.0.1 is a private address"),
        AttemptResult(None, "connection error: ConnectionError"),
    ],
)
def test_other_answers_retry_on_the_schedule_then_fail(result: AttemptResult) -> None:
    assert decide(result, 1, SCHEDULE) == Decision("retrying", 5.0)
    assert decide(result, 2, SCHEDULE) == Decision("retrying", 300.0)
    assert decide(result, 3, SCHEDULE) == Decision("retrying", 1800.0)
    assert decide(result, 4, SCHEDULE) == Decision("failed")


def test_an_empty_schedule_means_one_attempt() -> None:
    assert decide(AttemptResult(500), 1, ()) == Decision("failed")


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_replaces_the_schedule_for_429_and_503(code: int) -> None:
    assert decide(AttemptResult(code, retry_after_s=42.0), 1, SCHEDULE) == Decision("retrying", 42.0)


def test_retry_after_is_capped_by_the_longest_scheduled_wait() -> None:
    assert decide(AttemptResult(429, retry_after_s=10**7), 1, SCHEDULE) == Decision("retrying", 1800.0)


def test_retry_after_is_ignored_for_other_codes() -> None:
    assert decide(AttemptResult(500, retry_after_s=42.0), 1, SCHEDULE) == Decision("retrying", 5.0)


def test_retry_after_does_not_add_attempts() -> None:
    assert decide(AttemptResult(429, retry_after_s=1.0), 4, SCHEDULE) == Decision("failed")


@given(
    st.one_of(st.none(), st.integers(100, 599)),
    st.integers(1, 12),
    st.lists(st.floats(0, 10**5), max_size=8),
    st.one_of(st.none(), st.floats(0, 10**6)),
)
def test_every_attempt_ends_in_one_known_outcome(
    code: int | None, attempt: int, schedule: list[float], retry_after: float | None
) -> None:
    decision = decide(AttemptResult(code, retry_after_s=retry_after), attempt, schedule)
    assert decision.outcome in {"delivered", "retrying", "failed", "disabled"}
    if decision.outcome == "retrying":
        assert attempt <= len(schedule)
        assert decision.delay_s is not None and 0 <= decision.delay_s <= max(schedule)
    else:
        assert decision.delay_s is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: now
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == seconds


@pytest.mark.parametrize(
    ("remaining", "delay"), [(0.0, 0), (0.7, 0), (1.0, 1), (5.9, 5), (900.0, 900), (7200.0, SQS_MAX_DELAY_S), (-3, 0)]
)
def test_sqs_delay_is_whole_seconds_up_to_the_sqs_maximum(remaining: float, delay: int) -> None:
    assert sqs_delay(remaining) == delay


def test_hops_and_sub_second_waits() -> None:
    # Two hours ahead: back on the queue (several 900 s hops); 0.4 s ahead: wait it out; late: send.
    assert hop_needed(not_before=7300.0, now=100.0)
    assert not hop_needed(not_before=100.4, now=100.0)
    assert early_by(100.4, 100.0) == pytest.approx(0.4)
    assert early_by(99.0, 100.0) == 0.0


def test_a_long_wait_is_reached_in_hops_of_at_most_900_s() -> None:
    now, not_before, hops = 0.0, 7200.0, 0
    while hop_needed(not_before, now):
        delay = sqs_delay(not_before - now)
        assert 1 <= delay <= SQS_MAX_DELAY_S
        now += delay  # the message comes back after its delay
        hops += 1
    assert hops == 8
    assert early_by(not_before, now) < 1.0


def test_webhook_id_is_task_and_version() -> None:
    assert webhook_id("t-1", 3) == "t-1.3"


def test_body_is_the_standard_envelope_and_stable() -> None:
    message = {"type": "task.status", "task_id": "t-1", "status": "RUNNING", "version": 2, "progress": 5, "at": "T"}
    body = webhook_body(message)
    assert json.loads(body) == {"type": "task.status", "timestamp": "T", "data": message}
    assert webhook_body(dict(message)) == body


def test_headers_verify_with_the_standardwebhooks_library() -> None:
    payload = '{"type":"task.status"}'
    headers = signed_headers([SECRET], "t-1.2", payload)
    assert headers["webhook-id"] == "t-1.2"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(payload, headers) == {"type": "task.status"}


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    payload = '{"a":1}'
    headers = signed_headers([SECRET, OTHER], "t-1.2", payload)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(SECRET).verify(payload, headers)
    Webhook(OTHER).verify(payload, headers)


def test_a_changed_body_does_not_verify() -> None:
    headers = signed_headers([SECRET], "t-1.2", '{"a":1}')
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify('{"a":2}', headers)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        signed_headers([], "t-1.2", "{}")


def test_jobs_round_trip_and_count_attempts() -> None:
    job = WebhookJob("t-1", "acme", 2, "https://example.com/h", '{"a":1}', expires_at=99)
    again = WebhookJob.from_json(job.next_attempt(5.0, now=1000.0).to_json())
    assert again.attempt == 2 and again.not_before == 1005.0 and again.payload == job.payload
    assert again.webhook_id == "t-1.2"


@pytest.mark.parametrize("text", ["", "nope", "[]", '{"task_id": "t"}', '{"task_id":"t","tenant":"a","version":0,'
                                  '"callback_url":"u","payload":"p"}'])
def test_bad_jobs_are_refused(text: str) -> None:
    with pytest.raises(BadJob):
        WebhookJob.from_json(text)
