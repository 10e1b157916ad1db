"""Webhook delivery's pure decisions: the circuit breaker, the endpoint, a job's back-off and the hand-off batches."""

from __future__ import annotations

from taskcast.webhooks.breaker import (
    BreakerPolicy,
    BreakerState,
    Gate,
    after_failure,
    gate,
    is_endpoint_failure,
)
from taskcast.webhooks.format import AttemptResult, WebhookJob, busy_delay

POLICY = BreakerPolicy(threshold=3, base_s=10.0, max_s=60.0)


def test_a_closed_breaker_lets_jobs_through_and_opens_at_the_threshold() -> None:
    assert gate(BreakerState(), 100.0) == Gate("closed")
    assert after_failure(BreakerState(failures=2), 100.0, POLICY) is None
    opened = after_failure(BreakerState(failures=3), 100.0, POLICY)
    assert opened == BreakerState(failures=0, open_until=110.0, openings=1)
    assert gate(opened, 104.0) == Gate("open", 6.0)


def test_after_the_cool_down_one_probe_and_its_failure_reopens_for_longer() -> None:
    cooled = BreakerState(open_until=110.0, openings=1)
    assert gate(cooled, 110.0) == Gate("half-open")
    assert gate(BreakerState(open_until=110.0, openings=1, probe_until=130.0), 115.0) == Gate("open", 15.0)
    reopened = after_failure(BreakerState(failures=1, open_until=110.0, openings=1), 112.0, POLICY)
    assert reopened is not None and reopened.openings == 2 and reopened.open_until == 132.0


def test_the_cool_down_doubles_up_to_its_cap() -> None:
    assert [POLICY.cool_down(openings) for openings in range(1, 6)] == [10.0, 20.0, 40.0, 60.0, 60.0]


def test_only_timeouts_connection_errors_and_5xx_count_against_an_endpoint() -> None:
    assert is_endpoint_failure(AttemptResult(error="timeout", unreachable=True))
    assert is_endpoint_failure(AttemptResult(status_code=503))
    assert not is_endpoint_failure(AttemptResult(status_code=404))
    assert not is_endpoint_failure(AttemptResult(status_code=302, error="redirect"))
    assert not is_endpoint_failure(AttemptResult(error="refused: private address"))


def test_an_endpoint_is_the_tenant_and_the_callback_origin() -> None:
    def job(tenant: str, url: str) -> WebhookJob:
        return WebhookJob("t-1", tenant, 1, url, "{}", expires_at=0)

    assert job("acme", "https://Hooks.Example.com/a?x=1").endpoint == "acme https://hooks.example.com"
    assert job("acme", "https://hooks.example.com:8443/b").endpoint == "acme https://hooks.example.com:8443"
    assert job("globex", "https://hooks.example.com/a").endpoint != job("acme", "https://hooks.example.com/a").endpoint


def test_a_job_put_back_untried_keeps_its_attempt_and_backs_off_while_its_tenant_stays_busy() -> None:
    job = WebhookJob("t-1", "acme", 1, "https://hooks.example.com/", "{}", expires_at=0, attempt=2)
    later = job.put_off(1.0, 100.0, busy=True).put_off(2.0, 101.0, busy=True)
    assert (later.attempt, later.deferrals, later.not_before) == (2, 2, 103.0)
    assert later.put_off(30.0, 110.0).deferrals == 2  # an open breaker's wait is not a back-off
    assert WebhookJob.from_json(later.to_json()) == later
    assert later.next_attempt(5.0, 200.0).deferrals == 0
    assert [busy_delay(deferrals, cap_s=18.0) for deferrals in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 18.0, 18.0]


def test_hand_off_batches_hold_at_most_ten_jobs_and_256_kib_of_bodies() -> None:
    from taskcast.webhooks.retry_queue import _batches

    small = [WebhookJob(f"t-{n}", "acme", 1, "https://h.example/", "{}", expires_at=0) for n in range(23)]
    assert [len(batch) for batch in _batches(small, 0.0)] == [10, 10, 3]
    big = [WebhookJob(f"t-{n}", "acme", 1, "https://h.example/", "x" * 100_000, expires_at=0) for n in range(5)]
    batches = _batches(big, 0.0)
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [entry["Id"] for batch in batches for entry in batch] == ["0", "1", "2", "3", "4"]
