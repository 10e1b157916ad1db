"""External workers: handing a task to one (the token, the beat, the check, the job message) and taking its
reports, authenticated by the task token alone. Decisions live in ``task_tokens``, ``external_reports`` and
``heartbeats``; this module does their I/O."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskcast import external_reports as reports
from taskcast.external_queues import Handoffs, HeartbeatChecks
from taskcast.heartbeats import HeartbeatCheck
from taskcast.jobs.registry import ExternalJob
from taskcast.models import Task
from taskcast.results import ResultStore, encode_result, goes_to_s3
from taskcast.store import Heartbeats, TaskStore
from taskcast.task_tokens import matches, parse

logger = logging.getLogger(__name__)


class TokenRefused(Exception):
    """Not a token, an unknown (or expired) task, or the wrong secret: one answer for all, so that a guesser
    learns nothing about which tasks exist."""


class ResultNotStored(Exception):
    """A result too large for the task record, with no bucket to put it in (or the put failed)."""


@dataclass
class ExternalWorkers:
    store: TaskStore
    heartbeats: Heartbeats
    jobs: Handoffs
    checks: HeartbeatChecks
    results: ResultStore | None
    inline_limit_bytes: int
    clock: Callable[[], float] = field(default=time.time)

    def hand_off(self, task: Task, token: str, external: ExternalJob) -> None:
        """Start the task's heartbeat window and hand it to its worker as the job declares; raises if any step
        fails (the caller then marks the task FAILED, and the check, if sent, finds it over)."""
        now = self.clock()
        self.heartbeats.beat(task.id, now, task.expires_at)
        self.checks.send(HeartbeatCheck(task.id, now + task.heartbeat_s), now)
        self.jobs.send(external, task, token)

    def authenticate(self, token: str) -> Task:
        """The task ``token`` was issued for, as it is now; ``TokenRefused`` otherwise."""
        presented = parse(token)
        task = self.store.get(presented.task_id) if presented is not None else None
        if presented is None or task is None or not matches(presented, task.token_sha256):
            raise TokenRefused
        return task

    def heartbeat(self, task: Task) -> Task:
        """Raises ``TaskEnded`` for an ended task (a cancelled one included)."""
        self._beat(task)
        return self._started(task)

    def progress(self, task: Task, percent: float, message: str | None) -> Task:
        self._beat(task)
        return self._write(task, reports.report_progress(percent, message))

    def succeed(self, task: Task, result: Any) -> Task:
        task = self._started(task)
        return self._write(task, reports.succeed(**self._stored_result(task, result)))

    def fail(self, task: Task, reported: dict[str, Any]) -> Task:
        task = self._started(task)
        return self._write(task, reports.fail(reports.worker_problem(reported)))

    def _beat(self, task: Task) -> None:
        if task.terminal:
            raise reports.TaskEnded(task)
        self.heartbeats.beat(task.id, self.clock(), task.expires_at)

    def _started(self, task: Task) -> Task:
        return self.store.update(task.id, reports.start) or task

    def _write(self, task: Task, change: reports.Change) -> Task:
        written = self.store.update(task.id, change)
        if written is None:  # expired or deleted between the reads
            raise TokenRefused
        return written

    def _stored_result(self, task: Task, result: Any) -> dict[str, Any]:
        encoded = encode_result(result)
        if not goes_to_s3(len(encoded), len(json.dumps(task.input).encode()), self.inline_limit_bytes):
            return {"result": result}
        if self.results is None:
            raise ResultNotStored("no bucket for large results is configured")
        try:
            return {"result_ref": self.results.put(task, encoded)}
        except Exception as error:
            logger.error("task %s: storing its result failed: %s", task.id, type(error).__name__)
            raise ResultNotStored(type(error).__name__) from None
