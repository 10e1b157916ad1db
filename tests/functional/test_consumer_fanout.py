"""The stream consumer over real stream records (moto) posting to a real @connections server."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from taskcast.models import Status
from taskcast.push.fanout import (
    MAX_FRAME_BYTES,
    ConnectionPoster,
    WebSocketFanout,
    management_client,
    parse_stream_record,
)
from taskcast.store import Markers, to_attributes
from tests.support.push_env import PushEnv, failed_sequence_numbers, sequence_of, versions

pytest_plugins = ["tests.support.push_fixtures"]

pytestmark = pytest.mark.timeout(60)



def no_scans(push_env: PushEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: Any) -> None:
        raise AssertionError("the push path must never Scan")

    monkeypatch.setattr(push_env.push.subscriptions.client, "scan", refuse)


def test_every_subscriber_gets_every_change_in_version_order(
    push_env: PushEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_scans(push_env, monkeypatch)
    task = push_env.create_task()
    listeners = [push_env.connections.connect() for _ in range(6)]
    for connection in listeners:
        push_env.subscribe(connection, task.id)
    written = push_env.run_to_success(task, steps=4)

    response = push_env.consume()

    assert failed_sequence_numbers(response) == []
    expected = list(range(1, written[-1].version + 1))
    for connection in listeners:
        frames = push_env.connections.frames(connection)
        assert versions(frames) == expected
        assert frames[-1]["status"] == "SUCCEEDED" and frames[-1]["result_url"] == f"/tasks/{task.id}/result"


def test_changes_split_over_several_batches_stay_in_order(push_env: PushEnv) -> None:
    task = push_env.create_task()
    connection = push_env.connections.connect()
    push_env.subscribe(connection, task.id)
    current = task
    for step in range(5):
        current = push_env.advance(current, Status.RUNNING, progress=step * 10)
        assert failed_sequence_numbers(push_env.consume()) == []
    assert versions(push_env.connections.frames(connection)) == list(range(1, current.version + 1))


def test_subscribers_of_other_tasks_and_tenants_get_nothing(push_env: PushEnv) -> None:
    mine = push_env.create_task()
    theirs = push_env.create_task(tenant="globex")
    me = push_env.connections.connect()
    them = push_env.connections.connect()
    push_env.subscribe(me, mine.id)
    push_env.subscribe(them, theirs.id, tenant="globex")

    push_env.advance(mine, Status.RUNNING)
    push_env.consume()

    assert versions(push_env.connections.frames(me)) == [1, 2]
    assert versions(push_env.connections.frames(them)) == [1]


def test_gone_connections_are_cleaned_up_and_do_not_fail_the_batch(push_env: PushEnv) -> None:
    task = push_env.create_task()
    other = push_env.create_task()
    staying, leaving = push_env.connections.connect(), push_env.connections.connect()
    for connection in (staying, leaving):
        push_env.subscribe(connection, task.id)
    push_env.subscribe(leaving, other.id)
    push_env.connections.disconnect(leaving)  # closed without a $disconnect reaching us

    push_env.advance(task, Status.RUNNING)
    response = push_env.consume()

    assert failed_sequence_numbers(response) == []
    assert versions(push_env.connections.frames(staying)) == [1, 2]
    assert [s.connection_id for s in push_env.push.subscriptions.for_task(task.id)] == [staying]
    assert push_env.push.subscriptions.for_task(other.id) == []


def test_throttled_posts_are_retried_until_delivered(push_env: PushEnv) -> None:
    task = push_env.create_task()
    connection = push_env.connections.connect()
    push_env.subscribe(connection, task.id)
    push_env.connections.throttle(connection, 3)

    push_env.advance(task, Status.RUNNING)
    response = push_env.consume()

    assert failed_sequence_numbers(response) == []
    assert versions(push_env.connections.frames(connection)) == [1, 2]
    statuses = [status for method, target, status in push_env.connections.requests if target == connection]
    assert statuses == [200, 429, 429, 429, 200]


def test_a_subscriber_still_throttled_after_the_retries_fails_the_record_not_the_batch(push_env: PushEnv) -> None:
    stuck_task, fine_task = push_env.create_task(), push_env.create_task()
    stuck, other_listener, fine = (push_env.connections.connect() for _ in range(3))
    push_env.subscribe(stuck, stuck_task.id)
    push_env.subscribe(other_listener, stuck_task.id)
    push_env.subscribe(fine, fine_task.id)
    push_env.connections.throttle(stuck, 1000)

    running = push_env.advance(stuck_task, Status.RUNNING)
    push_env.advance(running, Status.SUCCEEDED)
    push_env.advance(fine_task, Status.RUNNING)
    event = push_env.stream_event()
    response = push_env.consume(event)

    # v2 could not reach one subscriber; v3 of the same task must not overtake it.
    stuck_records = [sequence_of(event, stuck_task.id, 2), sequence_of(event, stuck_task.id, 3)]
    assert failed_sequence_numbers(response) == stuck_records
    assert versions(push_env.connections.frames(fine)) == [1, 2]
    assert versions(push_env.connections.frames(stuck)) == [1]

    # The stream delivers again from the lowest failed record; the receiver is back.
    push_env.connections.throttle(stuck, 0)
    failed_from = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]].index(
        failed_sequence_numbers(response)[0]
    )
    replay = {"Records": event["Records"][failed_from:]}
    assert failed_sequence_numbers(push_env.consume(replay)) == []

    assert versions(push_env.connections.frames(stuck)) == [1, 2, 3]
    assert versions(push_env.connections.frames(fine)) == [1, 2]
    # The partly delivered v2 reaches the other listener again: a repeat, never a version going back.
    assert versions(push_env.connections.frames(other_listener)) == [1, 2, 2, 3]


def test_a_poison_record_fails_alone_while_the_rest_are_delivered(push_env: PushEnv) -> None:
    before, after = push_env.create_task(), push_env.create_task()
    listener = push_env.connections.connect()
    push_env.subscribe(listener, before.id)
    push_env.subscribe(listener, after.id)
    push_env.stream_event()

    push_env.advance(before, Status.RUNNING)
    # A task state nobody can read (no tenant, no type): a real INSERT in the stream.
    push_env.dynamodb.put_item(
        TableName=push_env.settings.tasks_table,
        Item=to_attributes({"pk": "t-poison", "sk": "STATE", "status": "RUNNING", "version": 1}),
    )
    push_env.advance(after, Status.RUNNING)
    event = push_env.stream_event()
    assert len(event["Records"]) == 3

    response = push_env.consume(event)

    poison = next(r for r in event["Records"] if r["dynamodb"]["Keys"]["pk"]["S"] == "t-poison")
    assert failed_sequence_numbers(response) == [poison["dynamodb"]["SequenceNumber"]]
    frames = push_env.connections.frames(listener)
    # Order is per task (the two tasks' changes go out concurrently).
    for task in (before, after):
        assert [frame["version"] for frame in frames if frame["task_id"] == task.id] == [1, 2]


def test_a_replayed_batch_sends_no_duplicate_versions(push_env: PushEnv) -> None:
    task = push_env.create_task()
    listeners = [push_env.connections.connect() for _ in range(3)]
    for connection in listeners:
        push_env.subscribe(connection, task.id)
    push_env.run_to_success(task)
    event = push_env.stream_event()

    push_env.consume(event)
    push_env.consume(event)  # at-least-once: the same records again
    push_env.consume({"Records": event["Records"][1:]})

    for connection in listeners:
        assert versions(push_env.connections.frames(connection)) == [1, 2, 3, 4, 5]


def test_an_oversize_message_reaches_subscribers_as_a_small_pointer(push_env: PushEnv) -> None:
    task = push_env.create_task()
    connection = push_env.connections.connect()
    push_env.subscribe(connection, task.id)
    error = {"type": "https://taskcast.dev/problems/job-failed", "title": "Job failed", "status": 500,
             "detail": "x" * (MAX_FRAME_BYTES + 10)}
    push_env.advance(task, Status.FAILED, error=error)

    assert failed_sequence_numbers(push_env.consume()) == []

    last = push_env.connections.frames(connection)[-1]
    assert last["status"] == "FAILED" and last["version"] == 2
    assert last["truncated"] is True and last["task_url"] == f"/tasks/{task.id}"
    assert "error" not in last


class SignallingSleep:
    """Lets a test see that the fan-out is waiting for a handshake, without timing assumptions."""

    def __init__(self) -> None:
        self.waiting = threading.Event()

    def __call__(self, seconds: float) -> None:
        self.waiting.set()
        time.sleep(min(seconds, 0.02))


def fanout_with(push_env: PushEnv, sleep: SignallingSleep) -> WebSocketFanout:
    poster = ConnectionPoster(management_client(push_env.connections.url), workers=4)
    return WebSocketFanout(
        push_env.push.subscriptions, poster, Markers(push_env.settings.tasks_table), sleep=sleep
    )


@pytest.mark.parametrize(("snapshot_version", "expected"), [(1, [1, 2]), (2, [2])])
def test_live_changes_wait_for_the_subscribe_handshake_and_never_go_backwards(
    push_env: PushEnv, snapshot_version: int, expected: list[int]
) -> None:
    task = push_env.create_task()
    running = push_env.advance(task, Status.RUNNING)
    [_, change_record] = push_env.stream_event()["Records"]
    change = parse_stream_record(change_record)
    assert change is not None and change.task.version == 2
    connection = push_env.connections.connect()
    # A handshake in progress: the subscription is written, its snapshot not yet sent.
    begun = push_env.push.subscriptions.begin(task.id, connection, "acme")
    sleep = SignallingSleep()
    fanout = fanout_with(push_env, sleep)

    worker = threading.Thread(target=fanout.fan_out, args=(change,))
    worker.start()
    assert sleep.waiting.wait(timeout=5), "the fan-out did not wait for the handshake"
    assert push_env.connections.frames(connection) == []
    # The handshake sends its snapshot, then confirms.
    snapshot = task if snapshot_version == 1 else running
    push_env.push.poster.post(connection, b'{"type":"task.status","version":%d}' % snapshot.version)
    assert push_env.push.subscriptions.confirm(begun, snapshot.version)
    worker.join(timeout=10)

    assert not worker.is_alive()
    assert [frame["version"] for frame in push_env.connections.frames(connection)] == expected


def test_a_handshake_that_never_confirms_holds_changes_back_only_for_a_while_and_gets_none(
    push_env: PushEnv,
) -> None:
    task = push_env.create_task()
    push_env.advance(task, Status.RUNNING)
    change = parse_stream_record(push_env.stream_event()["Records"][-1])
    assert change is not None
    connection = push_env.connections.connect()
    # A subscribe handler that died after writing the subscription: its hold ends soon.
    push_env.push.subscriptions.begin(task.id, connection, "acme", now=time.time() - 4.8)

    report = fanout_with(push_env, SignallingSleep()).fan_out(change)

    # Its client was told the subscribe failed and subscribes again; a live version sent now could arrive
    # ahead of that subscribe's snapshot.
    assert report.sent == 0
    assert push_env.connections.frames(connection) == []
