"""The per-tenant limit decisions, the long-poll re-read schedule and the fan-out time bound."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from taskcast.api.waiting import hold
from taskcast.limits import (
    SubscriptionLimits,
    fanout_worst_case_s,
    reread_delay,
    rereads_of_hold,
    within,
)
from taskcast.push.fanout import ConnectionPoster, PostFailed
from taskcast.settings import Settings


def test_within_counts_the_new_item() -> None:
    assert within(20, 20)
    assert not within(21, 20)
    assert not within(1, 0)  # a limit of 0 refuses everything


def test_subscription_limits_come_from_settings_with_documented_defaults() -> None:
    limits = SubscriptionLimits.from_settings(Settings())
    assert (limits.per_connection, limits.per_task, limits.connections_per_tenant) == (100, 2000, 5000)
    assert Settings().long_polls_per_tenant == 20
    custom = Settings.from_env(
        {
            "TASKCAST_SUBSCRIPTIONS_PER_CONNECTION": "3",
            "TASKCAST_SUBSCRIBERS_PER_TASK": "4",
            "TASKCAST_CONNECTIONS_PER_TENANT": "5",
            "TASKCAST_LONG_POLLS_PER_TENANT": "6",
            "TASKCAST_LONG_POLL_MAX_INTERVAL": "2",
            "TASKCAST_FANOUT_CHANGE_BUDGET": "7.5",
        }
    )
    assert SubscriptionLimits.from_settings(custom) == SubscriptionLimits(3, 4, 5)
    assert (custom.long_polls_per_tenant, custom.long_poll_max_interval_s, custom.fanout_change_budget_s) == (6, 2, 7.5)


def test_a_subscription_is_refused_past_either_limit_with_a_code_ending_in_limit_exceeded() -> None:
    limits = SubscriptionLimits(per_connection=2, per_task=3, connections_per_tenant=1)
    by_connection = limits.connection_refusal()
    by_task = limits.task_refusal()
    assert by_connection.code == "subscription_limit_exceeded"
    assert by_task.code == "subscriber_limit_exceeded"
    assert "at most 2 tasks" in by_connection.message and "at most 3 subscribers" in by_task.message


def test_rereads_start_fast_and_back_off_to_the_cap() -> None:
    assert [reread_delay(n, 0.1, 1.0) for n in range(7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert reread_delay(10_000, 0.1, 1.0) == 1.0
    assert reread_delay(3, 0.1, 0.1) == 0.1  # no backoff: the old fixed interval
    assert reread_delay(0, 0.5, 0.1) == 0.5  # a cap below the first delay never shortens it


def test_a_quiet_25_s_hold_costs_about_a_ninth_of_the_reads() -> None:
    assert rereads_of_hold(25, 0.1, 0.1) == 250
    assert rereads_of_hold(25, 0.1, 1.0) == 28  # 4 reads in the first 1.5 s, then one a second
    assert rereads_of_hold(5, 0.1, 1.0) == 8


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def test_hold_backs_off_between_rereads() -> None:
    time = FakeTime()
    reads: list[float] = []

    def read() -> int:
        reads.append(time.now)
        return 1

    assert hold(read, lambda v: v != 1, 5, 0.1, initial=1, max_interval_s=1.0, sleep=time.sleep,
                clock=time.clock) == 1
    assert time.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 0.5])
    assert len(reads) == 8
    assert reads[-1] == pytest.approx(5.0)


def test_the_fan_out_of_one_change_is_bounded_by_its_budget() -> None:
    # 2,000 subscribers, 16 posts at a time, 15 ms each: ~1.9 s; a slow gateway is cut at the budget.
    assert fanout_worst_case_s(2000, 16, 0.015, 20) == pytest.approx(125 * 0.015)
    assert fanout_worst_case_s(2000, 16, 1.0, 20) == 21.0
    assert fanout_worst_case_s(0, 16, 1.0, 20) == 0


class AlwaysThrottled:
    def __init__(self) -> None:
        self.calls = 0

    def post_to_connection(self, **_: Any) -> None:
        self.calls += 1
        raise ClientError(
            {"Error": {"Code": "LimitExceededException"}, "ResponseMetadata": {"HTTPStatusCode": 429}},
            "PostToConnection",
        )


def test_a_post_stops_retrying_when_its_budget_would_run_out() -> None:
    time = FakeTime()
    client = AlwaysThrottled()
    poster = ConnectionPoster(client, workers=1, sleep=time.sleep, rand=lambda: 1.0, clock=time.clock)
    try:
        with pytest.raises(PostFailed, match="out of time"):
            poster.post("c-1", b"{}", budget_s=0.3)
        # Waits of 0.05 and 0.1 fit in 0.3 s; the next (0.2) would not: three attempts, not six.
        assert client.calls == 3
        assert time.now <= 0.3

        unbounded = AlwaysThrottled()
        poster.client = unbounded
        with pytest.raises(PostFailed, match="after 6 attempts"):
            poster.post("c-1", b"{}")
        assert unbounded.calls == 6
    finally:
        poster.shutdown()
