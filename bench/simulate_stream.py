"""One DynamoDB stream shard, written at a steady rate, and Lambda's event source mapping reading it.

- ``TaskWriter``: ``tasks`` tasks in flight at once, each moving through ``versions`` versions
  (PENDING → RUNNING → progress … → SUCCEEDED); each write is the STATE item's stream record
  (``NEW_AND_OLD_IMAGES``), the only kind the template's filter lets through to the consumer. A task
  that finishes is replaced by a new one, whose subscribers are written first.
- ``Shard``: the records with their write times, in sequence order.
- ``lane_of``: which of the ``ParallelizationFactor`` lanes a record goes to. Lambda keeps order per
  partition key, so every record of a key goes to the same lane, in order.
- ``Lane``: one concurrent invocation at a time. Records become visible every poll interval (Lambda
  reads a shard about 4 times a second); an idle lane invokes at once with up to ``batch_size`` of its
  visible records, again and again while it has a backlog. With ``ReportBatchItemFailures`` (and no
  bisection) a batch that names failed records is checkpointed before the first of them, and the rest
  is delivered again; a batch that raises is delivered again whole. After ``max_retries`` a record
  is given up (counted as lost, as it would go to the on-failure destination).
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from taskcast.models import Status, Task
from taskcast.store import STATE, task_to_item

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/taskcast-tasks/stream/2026-01-01T00:00:00.000"


@dataclass(frozen=True)
class StreamRecord:
    sequence: int
    task_id: str
    version: int
    written_at: float  # time.monotonic()
    event: dict[str, Any]


def task_versions(task_id: str, tenant: str, versions: int, expires_at: int) -> list[Task]:
    """A task's life: PENDING, RUNNING, progress steps, SUCCEEDED (``versions`` ≥ 3 states)."""
    base = Task(id=task_id, tenant=tenant, type="simulated", input={"n": 1}, expires_at=expires_at)
    states = [base, replace(base, status=Status.RUNNING, version=2)]
    steps = versions - 3
    for step in range(steps):
        states.append(replace(base, status=Status.RUNNING, version=3 + step, progress=(step + 1) * 90 // max(1, steps)))
    states.append(replace(base, status=Status.SUCCEEDED, version=versions, progress=100, result={"ok": True}))
    return states


def stream_event(sequence: int, old: dict[str, Any] | None, new: Task, new_item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB Streams record of the tasks table's STATE item (``new_item``, after ``old``), as Lambda
    delivers it."""
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": float(int(time.time())),
        "Keys": {"pk": {"S": new.id}, "sk": {"S": STATE}},
        "NewImage": new_item,
        "SequenceNumber": f"{sequence:021d}",
        "SizeBytes": 400,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        body["OldImage"] = old
    return {
        "eventID": f"{sequence:032x}",
        "eventName": "MODIFY" if old is not None else "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": body,
        "eventSourceARN": STREAM_ARN,
    }


def lane_of(partition_key: str, lanes: int) -> int:
    """Lambda's split by partition key: the same key always lands in the same lane."""
    return zlib.crc32(partition_key.encode()) % max(1, lanes)


class Shard:
    def __init__(self) -> None:
        self._records: list[StreamRecord] = []
        self._lock = threading.Lock()
        self._written_at: dict[tuple[str, int], float] = {}

    def append(self, record: StreamRecord) -> None:
        with self._lock:
            self._records.append(record)
            self._written_at[(record.task_id, record.version)] = record.written_at

    def read(self, start: int) -> list[StreamRecord]:
        with self._lock:
            return self._records[start:]

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def written_at(self, task_id: str, version: int) -> float | None:
        return self._written_at.get((task_id, version))


@dataclass
class TaskWriter:
    """Writes ``rate`` changes a second into ``shard`` until ``stop`` is set.

    ``subscribe(task_id, connection_id)`` is called for each of a new task's subscribers before its
    first record is written; ``store_state(item)`` with each version's STATE item, before its record.
    """

    shard: Shard
    rate: float
    tasks: int
    versions: int
    subscribers: int
    subscribe: Callable[[str, str], None]
    store_state: Callable[[dict[str, Any]], None]
    tenant: str = "sim"
    seed: int = 1
    tick_s: float = 0.005
    stop: threading.Event = field(default_factory=threading.Event)
    started_tasks: int = 0
    cpu_s: float = 0.0  # the writer's own CPU time, apart from the consumer's
    error: Exception | None = None

    def run(self) -> None:
        cpu_started = time.thread_time()
        try:
            self._write()
        except Exception as error:  # noqa: BLE001 - kept for the run to raise once the writer has stopped
            self.error = error
        finally:
            self.cpu_s = time.thread_time() - cpu_started

    def _write(self) -> None:
        rand = random.Random(self.seed)
        expires_at = int(time.time()) + 86400
        active = [self._start_task(expires_at) for _ in range(self.tasks)]
        sequence = 0
        started = time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while sequence < due:
                slot = rand.randrange(len(active))
                life = active[slot]
                task, item = life.versions.pop(0)
                sequence += 1
                self.store_state(item)
                event = stream_event(sequence, life.previous, task, item)
                self.shard.append(StreamRecord(sequence, task.id, task.version, time.monotonic(), event))
                life.previous = item
                if not life.versions:
                    active[slot] = self._start_task(expires_at)
            self.stop.wait(self.tick_s)

    def _start_task(self, expires_at: int) -> _Life:
        self.started_tasks += 1
        task_id = f"sim-{self.seed}-{self.started_tasks:07d}"
        for index in range(self.subscribers):
            self.subscribe(task_id, f"{task_id}-c{index}")
        tasks = task_versions(task_id, self.tenant, self.versions, expires_at)
        return _Life([(task, task_to_item(task)) for task in tasks])


@dataclass
class _Life:
    """A task still being written: its versions to come (with their STATE items) and the last one written."""

    versions: list[tuple[Task, dict[str, Any]]]
    previous: dict[str, Any] | None = None


@dataclass
class LaneStats:
    invocations: int = 0
    completed: int = 0
    retried_batches: int = 0
    failed_records: int = 0
    given_up: int = 0
    busy_s: float = 0.0
    errors: list[str] = field(default_factory=list)  # the first few invocation errors, for the report


class Lane:
    """One of a shard's ``ParallelizationFactor`` concurrent batchers."""

    def __init__(
        self,
        index: int,
        invoke: Callable[[dict[str, Any]], dict[str, Any]],
        on_completed: Callable[[list[StreamRecord], float], None],
        batch_size: int,
        max_retries: int,
    ) -> None:
        self.index = index
        self._invoke = invoke
        self._on_completed = on_completed
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.stats = LaneStats()
        self._queue: deque[StreamRecord] = deque()
        self._attempts: dict[int, int] = {}
        self._ready = threading.Condition()
        self._stopping = False

    def offer(self, records: list[StreamRecord]) -> None:
        """Records read from the shard for this lane, in order."""
        with self._ready:
            self._queue.extend(records)
            self._ready.notify()

    def oldest_written_at(self) -> float | None:
        with self._ready:
            return self._queue[0].written_at if self._queue else None

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()

    def run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                batch = [self._queue[i] for i in range(min(self.batch_size, len(self._queue)))]
            self._invoke_once(batch)

    def _invoke_once(self, batch: list[StreamRecord]) -> None:
        started = time.monotonic()
        self.stats.invocations += 1
        try:
            response = self._invoke({"Records": [record.event for record in batch]})
            failures = {item["itemIdentifier"] for item in response.get("batchItemFailures") or []}
        except Exception as error:  # noqa: BLE001 - a function error: Lambda delivers the whole batch again
            if len(self.stats.errors) < 5:
                self.stats.errors.append(f"{type(error).__name__}: {error}")
            failures = {batch[0].event["dynamodb"]["SequenceNumber"]}
        finished = time.monotonic()
        self.stats.busy_s += finished - started
        numbers = [record.event["dynamodb"]["SequenceNumber"] for record in batch]
        first_failed = next((i for i, number in enumerate(numbers) if number in failures), len(batch))
        completed = batch[:first_failed]
        checkpointed = len(completed)
        if first_failed < len(batch):
            self.stats.retried_batches += 1
            self.stats.failed_records += len(batch) - first_failed
            failed = batch[first_failed]
            self._attempts[failed.sequence] = self._attempts.get(failed.sequence, 0) + 1
            if self._attempts[failed.sequence] > self.max_retries:
                self.stats.given_up += 1
                checkpointed += 1  # the checkpoint moves past it: the record is lost
        with self._ready:
            for _ in range(checkpointed):
                self._queue.popleft()
        self.stats.completed += len(completed)
        if completed:
            self._on_completed(completed, finished)
