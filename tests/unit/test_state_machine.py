"""The state machine holds under concurrency: conditional writes in the real ``TaskStore`` (moto DynamoDB)
never let ``version`` go backwards, never leave a terminal status, and keep one history record per version."""

from __future__ import annotations

import threading
import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from taskcast.models import ALLOWED, TERMINAL, InvalidTransition, Status, Task, transition
from taskcast.store import TaskStore, VersionConflict
from tests.functional.serial_client import serialized_dynamodb

WRITERS = 3
statuses = st.sampled_from(list(Status))
# One step of one writer: read the task (possibly going stale afterwards), or write a change decided
# from whatever that writer read last.
steps = st.lists(
    st.tuples(
        st.integers(0, WRITERS - 1),
        st.one_of(st.just(("read",)), st.tuples(st.just("write"), statuses, st.integers(-10, 110))),
    ),
    min_size=1,
    max_size=24,
)


@given(status=statuses, progress=st.integers(-1000, 1000))
def test_transition_raises_version_by_one_or_refuses(status: Status, progress: int) -> None:
    for start in Status:
        task = Task(id="t", tenant="acme", type="sleep", status=start, version=7)
        try:
            after = transition(task, status, progress=progress)
        except InvalidTransition:
            assert start in TERMINAL or status not in ALLOWED[start]
            continue
        assert start not in TERMINAL and status in ALLOWED[start]
        assert after.version == 8
        assert 0 <= after.progress <= 100
        assert after.status is status


@pytest.fixture
def store(dynamodb, settings) -> TaskStore:
    return TaskStore(settings.tasks_table, serialized_dynamodb())


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=steps)
def test_interleaved_stale_writers_never_move_version_backwards_or_leave_terminal(store: TaskStore, schedule) -> None:
    task = store.create(Task(id=str(uuid.uuid4()), tenant="acme", type="sleep"))
    seen: list[Task | None] = [None] * WRITERS
    observed = task
    written = 0
    for writer, operation in schedule:
        if operation[0] == "read":
            seen[writer] = store.get(task.id)
        elif seen[writer] is not None:
            _, status, progress = operation
            try:
                new = transition(seen[writer], status, progress=progress)
                seen[writer] = store.replace(seen[writer], new)
                written += 1
            except (InvalidTransition, VersionConflict):
                pass
        current = store.get(task.id)
        assert current.version >= observed.version
        if observed.terminal:
            assert (current.status, current.version) == (observed.status, observed.version)
        observed = current

    history = store.history(task.id)
    assert [entry["version"] for entry in history] == list(range(1, observed.version + 1))
    assert observed.version == 1 + written
    terminal_at = [index for index, entry in enumerate(history) if Status(entry["status"]).terminal]
    assert terminal_at in ([], [len(history) - 1])
    assert history[-1]["status"] == str(observed.status)


def test_threads_racing_through_update_leave_one_terminal_and_a_gapless_history(store: TaskStore) -> None:
    task = store.create(Task(id=str(uuid.uuid4()), tenant="acme", type="sleep", status=Status.PENDING))
    store.update(task.id, lambda current: transition(current, Status.RUNNING))
    winners: list[Status] = []
    start = threading.Barrier(6)

    def racer(final: Status) -> None:
        start.wait()
        for percent in range(0, 100, 20):
            try:
                store.update(task.id, lambda current, p=percent: transition(current, Status.RUNNING, progress=p))
            except InvalidTransition:
                return
        try:
            store.update(task.id, lambda current: transition(current, final))
            winners.append(final)
        except InvalidTransition:
            pass

    finals = [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED] * 2
    threads = [threading.Thread(target=racer, args=(final,)) for final in finals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(winners) == 1
    final = store.get(task.id)
    assert final.status is winners[0]
    history = store.history(task.id)
    assert [entry["version"] for entry in history] == list(range(1, final.version + 1))
    assert sum(Status(entry["status"]).terminal for entry in history) == 1


def test_a_task_is_expired_from_its_expires_at_on() -> None:
    from taskcast.models import Task, is_expired

    task = Task(id="t-1", tenant="acme", type="sleep", expires_at=1_000)
    assert not is_expired(task, 999.9)
    assert is_expired(task, 1_000)
    assert is_expired(task, 5_000)
    assert not is_expired(Task(id="t-2", tenant="acme", type="sleep"), 5_000)  # no TTL: never stored
