"""The stream consumer handles different tasks of one batch concurrently, one task's versions in order,
reads the FANOUT markers once per batch and writes them after every round of versions it sends (moto tables,
a real @connections server)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from taskcast.models import Status
from taskcast.push.batch_order import delivered_again_from
from tests.support.push_env import PushEnv, failed_sequence_numbers, sequence_of, versions

pytest_plugins = ["tests.support.push_fixtures"]

pytestmark = pytest.mark.timeout(60)



class BarrierClient:
    """An ``apigatewaymanagementapi`` client whose posts wait until ``parties`` posts are under way at
    once, then go to the real client: passing the barrier proves the posts overlapped."""

    def __init__(self, real: Any, parties: int) -> None:
        self.real = real
        self.barrier = threading.Barrier(parties, timeout=5)
        self.passed = 0
        self._lock = threading.Lock()

    def post_to_connection(self, **request: Any) -> Any:
        self.barrier.wait()  # BrokenBarrierError (not retried: the record fails) when the posts do not overlap
        with self._lock:
            self.passed += 1
        return self.real.post_to_connection(**request)


class CallCounter:
    """Counts the DynamoDB operations the consumer's stores make through one shared client."""

    OPERATIONS = ("get_item", "update_item", "query", "batch_get_item", "batch_write_item", "put_item")

    def __init__(self, push_env: PushEnv, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        clients = {id(push_env.push.subscriptions.client): push_env.push.subscriptions.client}
        clients[id(push_env.push.fanout.markers.client)] = push_env.push.fanout.markers.client
        for client in clients.values():
            for operation in self.OPERATIONS:
                monkeypatch.setattr(client, operation, self._counted(operation, getattr(client, operation)))

    def _counted(self, operation: str, call: Any) -> Any:
        def counted(**request: Any) -> Any:
            self.calls[operation] += 1
            return call(**request)

        return counted


def followed_tasks(push_env: PushEnv, count: int) -> list[tuple[Any, str]]:
    tasks = []
    for _ in range(count):
        task = push_env.create_task()
        connection = push_env.connections.connect()
        push_env.subscribe(connection, task.id)
        tasks.append((task, connection))
    push_env.stream_event()  # the creations: already past (each subscriber got v1 as its snapshot)
    return tasks


def test_two_tasks_of_one_batch_are_fanned_out_concurrently(
    push_env: PushEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    (first, first_listener), (second, second_listener) = followed_tasks(push_env, 2)
    push_env.advance(first, Status.RUNNING)
    push_env.advance(second, Status.RUNNING)
    barrier = BarrierClient(push_env.push.fanout.poster.client, parties=2)
    monkeypatch.setattr(push_env.push.fanout.poster, "client", barrier)

    response = push_env.consume()

    assert failed_sequence_numbers(response) == []
    assert barrier.passed == 2
    assert versions(push_env.connections.frames(first_listener)) == [1, 2]
    assert versions(push_env.connections.frames(second_listener)) == [1, 2]


def test_each_tasks_versions_go_out_in_order_while_tasks_run_concurrently(push_env: PushEnv) -> None:
    followed = followed_tasks(push_env, 6)
    last_versions = {}
    # Interleaved in the stream: every task's v2, then every task's v3, ...
    current = {task.id: task for task, _ in followed}
    for step in range(4):
        for task_id, task in list(current.items()):
            current[task_id] = push_env.advance(task, Status.RUNNING, progress=step * 20)
    for task_id, task in current.items():
        last_versions[task_id] = push_env.advance(task, Status.SUCCEEDED, result={"ok": True}).version

    assert failed_sequence_numbers(push_env.consume()) == []

    for task, connection in followed:
        assert versions(push_env.connections.frames(connection)) == list(range(1, last_versions[task.id] + 1))


def test_a_failed_post_fails_that_version_and_holds_the_tasks_later_ones_but_not_other_tasks(
    push_env: PushEnv,
) -> None:
    (stuck_task, stuck), (fine_task, fine) = followed_tasks(push_env, 2)
    push_env.connections.throttle(stuck, 1000)
    stuck_running = push_env.advance(stuck_task, Status.RUNNING)
    fine_running = push_env.advance(fine_task, Status.RUNNING)
    push_env.advance(stuck_running, Status.SUCCEEDED, result={})
    push_env.advance(fine_running, Status.SUCCEEDED, result={})
    event = push_env.stream_event()

    response = push_env.consume(event)

    # Exactly the stuck task's v2 (failed) and v3 (held), in stream order; the other task went out.
    stuck_records = [sequence_of(event, stuck_task.id, 2), sequence_of(event, stuck_task.id, 3)]
    assert failed_sequence_numbers(response) == stuck_records
    assert versions(push_env.connections.frames(fine)) == [1, 2, 3]
    assert versions(push_env.connections.frames(stuck)) == [1]  # the subscribe snapshot

    # Lambda delivers again from the lowest failed sequence number: that includes the other task's v2
    # and v3, already sent. The FANOUT marker keeps them from going out twice.
    numbers = [str(record["dynamodb"]["SequenceNumber"]) for record in event["Records"]]
    start = delivered_again_from(numbers, failed_sequence_numbers(response))
    assert start == numbers.index(sequence_of(event, stuck_task.id, 2))
    replay = {"Records": event["Records"][start:]}
    assert sequence_of(replay, fine_task.id, 2) and sequence_of(replay, fine_task.id, 3)
    push_env.connections.throttle(stuck, 0)

    assert failed_sequence_numbers(push_env.consume(replay)) == []
    assert versions(push_env.connections.frames(stuck)) == [1, 2, 3]
    assert versions(push_env.connections.frames(fine)) == [1, 2, 3]


def test_a_replayed_batch_of_several_tasks_sends_nothing_new(push_env: PushEnv) -> None:
    followed = followed_tasks(push_env, 3)
    for task, _ in followed:
        push_env.run_to_success(task)
    event = push_env.stream_event()
    assert failed_sequence_numbers(push_env.consume(event)) == []
    sent = {connection: push_env.connections.frames(connection) for _, connection in followed}

    assert failed_sequence_numbers(push_env.consume(event)) == []

    for _, connection in followed:
        assert push_env.connections.frames(connection) == sent[connection]
        assert versions(sent[connection]) == [1, 2, 3, 4, 5]


def test_markers_are_read_once_per_batch_written_once_per_round_and_untouched_for_tasks_nobody_follows(
    push_env: PushEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    followed = followed_tasks(push_env, 3)
    unfollowed = [push_env.create_task() for _ in range(2)]
    push_env.stream_event()
    for task in [task for task, _ in followed] + unfollowed:
        push_env.run_to_success(task)  # 4 changes each
    calls = CallCounter(push_env, monkeypatch)

    assert failed_sequence_numbers(push_env.consume()) == []

    # One subscriber Query per task (not per change), one registered-endpoints Query for their one tenant,
    # one BatchGetItem for the three followed tasks' markers, one BatchWriteItem per round (4 versions each:
    # 4 rounds of 3 tasks); nothing per change for the unfollowed tasks, and no per-change GetItem or UpdateItem.
    assert calls.calls == Counter(query=5 + 1, batch_get_item=1, batch_write_item=4)
    for task, _ in followed:
        assert push_env.push.fanout.markers.fanned_out_version(task.id) == 5
    for task in unfollowed:
        assert push_env.push.fanout.markers.fanned_out_version(task.id) == 0
    for _, connection in followed:
        assert versions(push_env.connections.frames(connection)) == [1, 2, 3, 4, 5]


def test_a_refused_marker_write_fails_from_that_rounds_version_and_the_replay_repeats_only_it(
    push_env: PushEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    [(task, connection)] = followed_tasks(push_env, 1)
    unfollowed = push_env.create_task()
    push_env.stream_event()
    running = push_env.advance(task, Status.RUNNING)
    push_env.advance(unfollowed, Status.RUNNING)
    push_env.advance(running, Status.SUCCEEDED, result={})
    event = push_env.stream_event()
    client = push_env.push.fanout.markers.client
    real_write = client.batch_write_item

    def refuse_version_3(**request: Any) -> Any:
        [puts] = request["RequestItems"].values()
        if any(put["PutRequest"]["Item"]["version"] == {"N": "3"} for put in puts):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "BatchWriteItem")
        return real_write(**request)

    with monkeypatch.context() as patch:
        patch.setattr(client, "batch_write_item", refuse_version_3)
        response = push_env.consume(event)

    # Round 1: v2 went out and its marker was written; round 2: v3 went out, its marker refused: only v3
    # comes back.
    assert failed_sequence_numbers(response) == [sequence_of(event, task.id, 3)]
    assert versions(push_env.connections.frames(connection)) == [1, 2, 3]
    assert push_env.push.fanout.markers.fanned_out_version(task.id) == 2
    numbers = [str(record["dynamodb"]["SequenceNumber"]) for record in event["Records"]]
    start = delivered_again_from(numbers, failed_sequence_numbers(response))
    assert failed_sequence_numbers(push_env.consume({"Records": event["Records"][start:]})) == []
    # The documented duplicate window: the newest version once more (an identical frame the client drops by
    # version); never an older one after it (no 1, 2, 3, 2, 3), none missing.
    assert versions(push_env.connections.frames(connection)) == [1, 2, 3, 3]
    assert push_env.push.fanout.markers.fanned_out_version(task.id) == 3
