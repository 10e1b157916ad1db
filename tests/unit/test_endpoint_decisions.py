"""The pure decisions of registered webhook endpoints: filters, secrets during a rotation, auto-disable,
what a replay sends and how fast, the paging cursor, and the jobs a task change becomes."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook

from taskcast.models import Status, Task
from taskcast.webhooks.delivery import endpoint_jobs
from taskcast.webhooks.endpoints import (
    MAX_REPLAY,
    MAX_REPLAY_BACKLOG,
    Endpoint,
    EndpointFilter,
    InvalidEndpoint,
    LoggedDelivery,
    SigningSecret,
    backlog_wait,
    decode_cursor,
    encode_cursor,
    failing_reason,
    is_delivery_id,
    is_endpoint_id,
    new_delivery_id,
    new_endpoint_id,
    new_secret,
    paced,
    page_size,
    parse_filter,
    replay_window,
    rotated,
    should_disable,
    signing_secrets,
    since_key,
    to_replay,
    wait_for_test_event,
)
from taskcast.webhooks.format import WebhookJob, signed_headers


def test_an_empty_filter_matches_everything_and_lists_narrow_it() -> None:
    assert EndpointFilter().matches("RUNNING", "sleep")
    finals = EndpointFilter(statuses=("SUCCEEDED", "FAILED"))
    assert finals.matches("FAILED", "anything") and not finals.matches("RUNNING", "sleep")
    both = EndpointFilter(statuses=("SUCCEEDED",), types=("digest",))
    assert both.matches("SUCCEEDED", "digest")
    assert not both.matches("SUCCEEDED", "sleep") and not both.matches("RUNNING", "digest")


def test_parsed_filters_are_checked_and_shown_as_given() -> None:
    assert parse_filter(None, None) == EndpointFilter()
    assert parse_filter(["FAILED", "FAILED"], ["a"]).as_json() == {"statuses": ["FAILED"], "types": ["a"]}
    assert EndpointFilter.from_json({"types": ["a"]}) == EndpointFilter(types=("a",))
    for statuses, types in [([], None), (None, []), (["DONE"], None), (None, ["x" * 65]), (None, ["t"] * 51)]:
        with pytest.raises(InvalidEndpoint):
            parse_filter(statuses, types)


def test_a_disabled_endpoint_wants_nothing() -> None:
    endpoint = Endpoint(id="ep_x", tenant="acme", url="https://example.com")
    assert endpoint.wants("RUNNING", "sleep")
    off = Endpoint(id="ep_x", tenant="acme", url="https://example.com", enabled=False, disabled_reason="r")
    assert not off.wants("RUNNING", "sleep")
    assert off.as_json()["disabled_reason"] == "r" and "disabled_reason" not in endpoint.as_json()


def test_ids_and_secrets_have_their_shapes() -> None:
    assert is_endpoint_id(new_endpoint_id()) and not is_endpoint_id("ep_../x")
    secret = new_secret()
    assert secret.startswith("whsec_")
    Webhook(secret)  # standardwebhooks accepts it as it is
    assert is_delivery_id(new_delivery_id(1_700_000_000.5))
    assert new_delivery_id(1_700_000_000.5).startswith("1700000000500")


def test_a_rotation_keeps_the_previous_secret_for_the_overlap_only() -> None:
    first = [SigningSecret("whsec_old")]
    after = rotated(first, "whsec_new", now=1000.0, overlap_s=60.0)
    assert after == [SigningSecret("whsec_new"), SigningSecret("whsec_old", 1060.0)]
    assert signing_secrets(after, 1059.0) == ["whsec_new", "whsec_old"]
    assert signing_secrets(after, 1060.0) == ["whsec_new"]
    # A second rotation drops the oldest: at most two sign at once.
    again = rotated(after, "whsec_newer", now=1010.0, overlap_s=60.0)
    assert [s.secret for s in again] == ["whsec_newer", "whsec_new"]


def test_both_secrets_sign_during_the_overlap() -> None:
    keys = signing_secrets(rotated([SigningSecret(new_secret())], new_secret(), 0.0, 60.0), 1.0)
    headers = signed_headers(keys, "ep_x.t.1", '{"a":1}')
    for key in keys:
        Webhook(key).verify('{"a":1}', headers)


def test_an_endpoint_is_disabled_once_it_has_failed_for_the_whole_time() -> None:
    assert not should_disable(None, now=10_000.0, disable_after_s=5.0)
    assert not should_disable(100.0, now=104.9, disable_after_s=5.0)
    assert should_disable(100.0, now=105.0, disable_after_s=5.0)
    assert failing_reason(5 * 86400) == "every delivery failed for 5 days"
    assert failing_reason(3) == "every delivery failed for 3 seconds"
    assert failing_reason(3600) == "every delivery failed for 1 hour"


def logged(delivery_id: str, webhook_id: str, outcome: str) -> LoggedDelivery:
    return LoggedDelivery(delivery_id, webhook_id, outcome)


def test_a_replay_sends_each_webhook_once_oldest_first() -> None:
    newest_first = [
        logged("5", "a", "delivered"),
        logged("4", "b", "failed"),
        logged("3", "a", "failed"),
        logged("2", "c", "disabled"),
        logged("1", "d", "retrying"),
    ]
    assert [e.delivery_id for e in to_replay(newest_first, only_failed=False)] == ["1", "2", "4", "5"]
    # Only what ended in failure (or was not sent while disabled); "a" was delivered in the end.
    assert [e.webhook_id for e in to_replay(newest_first, only_failed=True)] == ["c", "b"]
    many = [logged(str(n), str(n), "failed") for n in range(MAX_REPLAY + 5)]
    assert len(to_replay(many, only_failed=True)) == MAX_REPLAY


def test_a_replay_is_paced() -> None:
    assert paced(0, 10.0, 100.0) == []
    assert paced(3, 10.0, 100.0) == [100.0, 100.1, 100.2]
    times = paced(50, 5.0, 0.0)
    assert times[-1] == pytest.approx(9.8)  # 50 at 5 a second: spread over ten seconds


def test_replays_one_after_another_share_the_endpoints_rate() -> None:
    assert replay_window(None, now=100.0, count=20, rate_per_s=10.0) == (100.0, 102.0)
    # A second replay a second later starts after the first one's deliveries are all due.
    assert replay_window(102.0, now=101.0, count=10, rate_per_s=10.0) == (102.0, 103.0)
    # Long after, it starts now.
    assert replay_window(102.0, now=500.0, count=1, rate_per_s=10.0) == (500.0, 500.1)


def test_an_endpoints_replay_backlog_is_bounded() -> None:
    assert backlog_wait(None, now=100.0, count=MAX_REPLAY, rate_per_s=10.0) == 0.0
    # MAX_REPLAY_BACKLOG queued ahead (due over the next 200 s at 10 a second): one more waits 0.1 s.
    full = 100.0 + MAX_REPLAY_BACKLOG / 10.0
    assert backlog_wait(full, now=100.0, count=1, rate_per_s=10.0) == pytest.approx(0.1)
    # A whole replay more waits until as many are due.
    assert backlog_wait(full, now=100.0, count=MAX_REPLAY, rate_per_s=10.0) == pytest.approx(100.0)
    assert backlog_wait(full, now=200.0, count=MAX_REPLAY, rate_per_s=10.0) == 0.0
    assert backlog_wait(full, now=10_000.0, count=1, rate_per_s=10.0) == 0.0  # long past


def test_test_events_are_paced_per_endpoint() -> None:
    assert wait_for_test_event(None, now=100.0, interval_s=5.0) == 0.0
    assert wait_for_test_event(100.0, now=101.0, interval_s=5.0) == pytest.approx(4.0)
    assert wait_for_test_event(100.0, now=105.0, interval_s=5.0) == 0.0
    assert wait_for_test_event(100.0, now=100.0, interval_s=0.0) == 0.0


def test_the_cursor_round_trips_and_refuses_anything_else() -> None:
    delivery_id = new_delivery_id(1_700_000_000.0)
    assert decode_cursor(encode_cursor(delivery_id)) == delivery_id
    for bad in ["", "not-a-cursor", encode_cursor("x"), "ZDE6Li4v", "%%%"]:
        with pytest.raises(InvalidEndpoint):
            decode_cursor(bad)
    assert since_key(1_700_000_000.0) < delivery_id
    assert page_size(None) == 20 and page_size(100) == 100
    for limit in (0, 101, -1):
        with pytest.raises(InvalidEndpoint):
            page_size(limit)


def task(status: Status = Status.SUCCEEDED, task_type: str = "sleep", tenant: str = "acme") -> Task:
    return Task(
        id="t1", tenant=tenant, type=task_type, status=status, version=3, progress=100,
        created_at="2026-01-01T00:00:00.000Z", updated_at="2026-01-01T00:00:01.000Z", expires_at=2_000_000_000,
    )


def test_a_change_becomes_one_job_per_matching_endpoint_of_its_tenant() -> None:
    endpoints = [
        Endpoint(id="ep_all", tenant="acme", url="https://a.example"),
        Endpoint(id="ep_running", tenant="acme", url="https://b.example", filter=EndpointFilter(("RUNNING",))),
        Endpoint(id="ep_other", tenant="globex", url="https://c.example"),
    ]
    [job] = endpoint_jobs(task(), endpoints)
    assert job.endpoint_id == "ep_all" and job.webhook_id == "ep_all.t1.3" and job.from_stream
    assert job.endpoint == "acme ep_all"
    assert WebhookJob.from_json(job.to_json()) == job
    assert endpoint_jobs(task(tenant="initech"), endpoints) == []


def test_a_callback_job_reads_as_before() -> None:
    job = WebhookJob(task_id="t1", tenant="acme", version=2, callback_url="https://x.example/h", payload="{}",
                     expires_at=1)
    assert "endpoint_id" not in job.to_json()
    assert job.webhook_id == "t1.2"
