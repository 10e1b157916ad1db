"""What a running job sees: progress reports (which double as cooperative cancellation points),
a cancellation check, the time left in the Lambda invocation, a clock, AWS clients and its uploaded input."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskcast import aws
from taskcast.jobs.registry import JobFailed
from taskcast.jobs.uploaded import UploadedObject, UploadReader
from taskcast.models import Status, Task, transition
from taskcast.store import TaskStore


class Cancelled(Exception):
    """The task was cancelled (or otherwise finished) while the job ran: stop quietly."""


@dataclass(eq=False)
class JobContext:
    task: Task
    store: TaskStore
    lambda_context: Any = None
    client: Callable[[str], Any] = aws.client  # the boto3 client for a service name
    sleep: Callable[[float], None] = time.sleep
    uploads: UploadReader | None = None
    clock: Callable[[], float] = time.monotonic

    @property
    def task_id(self) -> str:
        return self.task.id

    def progress(self, percent: float, message: str | None = None) -> None:
        """Write a new version with ``percent`` done; raise ``Cancelled`` if the task no longer runs."""

        def report(current: Task) -> Task:
            if current.status is not Status.RUNNING:
                raise Cancelled(current.id)
            return transition(current, Status.RUNNING, progress=int(percent), message=message)

        written = self.store.update(self.task.id, report)
        if written is None:  # the task is gone (expired or deleted)
            raise Cancelled(self.task.id)
        self.task = written

    def cancelled(self) -> bool:
        current = self.store.get(self.task.id)
        return current is None or current.status is not Status.RUNNING

    def remaining_s(self) -> float:
        """Seconds left before Lambda stops this invocation (infinite outside Lambda)."""
        if self.lambda_context is None or not hasattr(self.lambda_context, "get_remaining_time_in_millis"):
            return math.inf
        return float(self.lambda_context.get_remaining_time_in_millis()) / 1000

    def open_upload(self, upload_id: str) -> UploadedObject:
        """The task's tenant's upload, checked against its declaration; read it with ``.chunks()``."""
        if self.uploads is None:
            raise JobFailed("this worker has no uploads bucket configured", kind="uploads-unavailable")
        return self.uploads.open(self.task.tenant, upload_id)
