"""Long-polls per tenant (leases in DynamoDB) and the backed-off re-reads of a hold, through the REST handler."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from taskcast.long_polls import LongPollLeases
from taskcast.settings import Settings
from taskcast.store import TaskStore
from tests.functional.rest_harness import WAIT_S, Reply, RestHarness

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def one_poll_each(dynamodb: None, settings: Settings) -> Iterator[RestHarness]:  # noqa: ARG001
    with RestHarness(replace(settings, long_polls_per_tenant=1)) as harness:
        yield harness


def hold_in_background(api: RestHarness, task_id: str, tenant: str = "acme") -> tuple[threading.Thread, list[Reply]]:
    answers: list[Reply] = []
    poller = threading.Thread(
        target=lambda: answers.append(api.request("GET", f"/tasks/{task_id}", query={"wait": "20"}, tenant=tenant))
    )
    api.hold_started.clear()
    poller.start()
    assert api.hold_started.wait(WAIT_S)
    return poller, answers


def test_a_long_poll_past_the_tenants_limit_answers_429_with_retry_after(one_poll_each: RestHarness) -> None:
    api = one_poll_each
    task_id, gate = api.create_gate("held")
    assert gate.reported.wait(WAIT_S)
    poller, answers = hold_in_background(api, task_id)

    refused = api.request("GET", f"/tasks/{task_id}", query={"wait": "5"})

    assert refused.status == 429
    assert refused.header("Content-Type") == "application/problem+json"
    assert refused.header("Retry-After") == "2"
    assert refused.json()["type"].endswith("/long-poll-limit-exceeded")
    assert refused.json()["limit"] == 1
    # A plain GET is never limited; the held request still ends with the change it waited for.
    assert api.request("GET", f"/tasks/{task_id}").status == 200
    gate.release.set()
    poller.join(WAIT_S)
    assert answers[0].json()["version"] > 2


def test_the_limit_is_per_tenant_and_a_finished_hold_frees_its_slot(one_poll_each: RestHarness) -> None:
    api = one_poll_each
    task_id, gate = api.create_gate("acme-held")
    assert gate.reported.wait(WAIT_S)
    poller, _ = hold_in_background(api, task_id)
    other_id, other_gate = api.create_gate("globex-held", tenant="globex")
    assert other_gate.reported.wait(WAIT_S)
    other_poller, other_answers = hold_in_background(api, other_id, tenant="globex")  # its own slot
    other_gate.release.set()
    other_poller.join(WAIT_S)
    assert other_answers[0].json()["status"] == "SUCCEEDED"

    gate.release.set()
    poller.join(WAIT_S)
    quiet_id, quiet = api.create_gate("quiet")
    assert quiet.reported.wait(WAIT_S)
    assert api.request("GET", f"/tasks/{quiet_id}", query={"wait": "0.2"}).status == 200
    assert api.deps.long_polls.count("acme", enough=10) == 0


def test_prefer_wait_past_the_limit_answers_202_at_once(one_poll_each: RestHarness) -> None:
    api = one_poll_each
    task_id, gate = api.create_gate("held")
    assert gate.reported.wait(WAIT_S)
    poller, _ = hold_in_background(api, task_id)
    sleeps_before = api.sleeps

    reply = api.create("sleep", {"seconds": 5}, headers={"Prefer": "wait=20"})

    assert reply.status == 202
    assert reply.header("Preference-Applied") is None
    assert api.sleeps == sleeps_before
    gate.release.set()
    poller.join(WAIT_S)


def test_a_lease_left_by_a_killed_function_stops_counting_after_its_hold(one_poll_each: RestHarness) -> None:
    api = one_poll_each
    # A function killed mid-hold 40 s ago: its lease was never released.
    leases = LongPollLeases(api.settings.tasks_table, api.dynamodb, clock=lambda: time.time() - 40)
    assert leases.acquire("acme", "killed", hold_s=25, limit=1)
    task_id, gate = api.create_gate("quiet")
    assert gate.reported.wait(WAIT_S)
    assert api.request("GET", f"/tasks/{task_id}", query={"wait": "0.2"}).status == 200


class CountingDynamoDB:
    """The DynamoDB client, counting the reads of one key."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.reads = 0

    def get_item(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self.client.get_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now = round(self.now + seconds, 9)  # fifty 0.1 s steps make exactly 5 s

    def clock(self) -> float:
        return self.now


@pytest.mark.parametrize(("max_interval_s", "reads"), [(0.1, 50), (1.0, 8)])
def test_a_quiet_5_s_hold_reads_the_task_eight_times_not_fifty(
    dynamodb: None, settings: Settings, max_interval_s: float, reads: int  # noqa: ARG001
) -> None:
    # 0.1 s, never backing off, was the old schedule; the default backs off to 1 s.
    tuned = replace(settings, long_poll_interval_s=0.1, long_poll_max_interval_s=max_interval_s)
    with RestHarness(tuned) as api:
        task_id, gate = api.create_gate("quiet")
        assert gate.reported.wait(WAIT_S)
        counting = CountingDynamoDB(api.dynamodb)
        api.deps.store = TaskStore(tuned.tasks_table, counting, retention_s=tuned.retention_s)
        virtual = VirtualTime()
        api.deps.sleep, api.deps.clock = virtual.sleep, virtual.clock

        reply = api.request("GET", f"/tasks/{task_id}", query={"wait": "5"})

        assert reply.status == 200 and reply.json()["status"] == "RUNNING"
        assert virtual.now == pytest.approx(5.0)
        # One read by the route before the hold, then the hold's re-reads.
        assert counting.reads == 1 + reads
