"""Fan-out planning and stream record reading: pure functions over data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcast.models import Status, Task, status_message, transition
from taskcast.push.fanout import (
    MAX_FRAME_BYTES,
    PoisonRecord,
    backoff_delays,
    frame,
    needs_sending,
    parse_stream_record,
    plan_fanout,
)
from taskcast.store import Subscription, task_to_item, to_attributes

SAMPLE = json.loads((Path(__file__).resolve().parents[1] / "fixtures/events/dynamodb-stream.json").read_text())


def stream_record(event_name: str, new: dict[str, Any] | None, old: dict[str, Any] | None = None) -> dict[str, Any]:
    """A record in the sample's shape, with our table's keys and images."""
    record = json.loads(json.dumps(SAMPLE["Records"][1 if event_name == "MODIFY" else 0]))
    record["eventName"] = event_name
    body = record["dynamodb"]
    image = new or old or {}
    body["Keys"] = {"pk": image["pk"], "sk": image["sk"]}
    body.pop("NewImage", None)
    body.pop("OldImage", None)
    if new is not None:
        body["NewImage"] = new
    if old is not None:
        body["OldImage"] = old
    return record


TASK = Task(id="t-1", tenant="acme", type="sleep", created_at="2030-01-01T00:00:00.000Z", expires_at=1)


def test_an_insert_of_the_state_is_a_change() -> None:
    change = parse_stream_record(stream_record("INSERT", task_to_item(TASK)))
    assert change is not None
    assert change.task == TASK
    assert change.sequence_number == "111"


def test_a_modify_that_raises_the_version_is_a_change() -> None:
    running = transition(TASK, Status.RUNNING, at="2030-01-01T00:00:01.000Z")
    change = parse_stream_record(stream_record("MODIFY", task_to_item(running), task_to_item(TASK)))
    assert change is not None and change.task.version == 2 and change.task.status is Status.RUNNING


def test_a_modify_that_keeps_the_version_is_not_a_change() -> None:
    assert parse_stream_record(stream_record("MODIFY", task_to_item(TASK), task_to_item(TASK))) is None


@pytest.mark.parametrize("sort_key", ["V#0000000001", "D#0000000001#001", "FANOUT", "WEBHOOK"])
def test_other_items_of_the_task_are_skipped(sort_key: str) -> None:
    item = to_attributes({"pk": "t-1", "sk": sort_key, "version": 3, "tenant": "acme"})
    assert parse_stream_record(stream_record("INSERT", item)) is None


def test_ttl_removals_are_skipped() -> None:
    assert parse_stream_record(stream_record("REMOVE", None, task_to_item(TASK))) is None


@pytest.mark.parametrize("missing", ["tenant", "status", "version", "created_at"])
def test_an_unreadable_state_is_a_poison_record(missing: str) -> None:
    item = task_to_item(TASK)
    del item[missing]
    with pytest.raises(PoisonRecord):
        parse_stream_record(stream_record("INSERT", item))


def test_an_unknown_status_is_a_poison_record() -> None:
    item = task_to_item(TASK)
    item["status"] = {"S": "EXPLODED"}
    with pytest.raises(PoisonRecord):
        parse_stream_record(stream_record("INSERT", item))


def sub(connection: str, after: int = 0, pending_until: float | None = None, tenant: str = "acme") -> Subscription:
    return Subscription("t-1", connection, tenant, after_version=after, pending_until=pending_until)


def test_plan_sends_to_subscribers_that_have_not_seen_the_version() -> None:
    plan = plan_fanout([sub("a"), sub("b", after=3), sub("c", after=5), sub("d", after=6)], "acme", 5, now=100.0)
    assert [s.connection_id for s in plan.send] == ["a", "b"]
    assert [s.connection_id for s in plan.skipped] == ["c", "d"]
    assert plan.wait == ()


def test_plan_waits_for_handshakes_in_progress_and_skips_those_that_never_confirmed() -> None:
    subscriptions = [sub("a", pending_until=101.0), sub("b", pending_until=99.0), sub("c")]
    plan = plan_fanout(subscriptions, "acme", 2, now=100.0)
    assert [s.connection_id for s in plan.wait] == ["a"]
    assert [s.connection_id for s in plan.skipped] == ["b"]  # its subscribe failed; the client subscribes again
    assert [s.connection_id for s in plan.send] == ["c"]


def test_plan_never_sends_to_another_tenant() -> None:
    plan = plan_fanout([sub("a", tenant="globex")], "acme", 2, now=0.0)
    assert plan.empty and len(plan.skipped) == 1


subscriptions = st.lists(
    st.builds(
        sub,
        connection=st.text("abcdef", min_size=1, max_size=4),
        after=st.integers(0, 10),
        pending_until=st.one_of(st.none(), st.floats(0, 200)),
        tenant=st.sampled_from(["acme", "globex"]),
    ),
    max_size=20,
)


@given(subscriptions, st.integers(1, 10), st.floats(0, 200))
def test_plan_partitions_subscriptions_and_never_sends_a_stale_version(
    subs: list[Subscription], version: int, now: float
) -> None:
    plan = plan_fanout(subs, "acme", version, now)
    assert sorted(map(id, [*plan.send, *plan.wait, *plan.skipped])) == sorted(map(id, subs))
    for chosen in plan.send:
        assert chosen.tenant == "acme" and chosen.after_version < version and chosen.pending_until is None
    for waiting in plan.wait:
        assert waiting.tenant == "acme" and waiting.pending(now)


def test_the_fanout_marker_skips_versions_already_sent() -> None:
    assert needs_sending(0, 1)
    assert needs_sending(4, 5)
    assert not needs_sending(5, 5)
    assert not needs_sending(6, 5)


def test_a_small_message_is_sent_as_compact_json() -> None:
    message = status_message(TASK)
    assert json.loads(frame(message)) == message
    assert b" " not in frame(message)


def test_an_oversize_message_is_replaced_by_a_small_one_pointing_to_the_task() -> None:
    failed = transition(
        TASK, Status.FAILED, error={"type": "x/job-failed", "title": "t", "status": 500, "detail": "é" * 200_000}
    )
    message = status_message(failed)
    data = frame(message)
    assert len(data) <= MAX_FRAME_BYTES
    assert json.loads(data) == {
        "type": "task.status",
        "task_id": "t-1",
        "status": "FAILED",
        "version": 2,
        "progress": 0,
        "at": failed.updated_at,
        "truncated": True,
        "task_url": "/tasks/t-1",
    }


@given(st.integers(1, 12), st.floats(0.001, 1), st.floats(0.001, 10))
def test_backoff_is_bounded_and_jittered(attempts: int, base: float, cap: float) -> None:
    highest = backoff_delays(attempts, base, cap, rand=lambda: 1.0)
    lowest = backoff_delays(attempts, base, cap, rand=lambda: 0.0)
    assert len(highest) == attempts - 1
    assert all(delay <= cap for delay in highest)
    assert highest == sorted(highest)
    assert all(delay == 0 for delay in lowest)
