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


class JobTimedOut(JobFailed):
    """The job ran past its own ``timeout_s``: the task fails with ``/job-timeout``."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the job ran past its timeout of {timeout_s:g} s", kind="job-timeout", timeout_s=timeout_s)


@dataclass(eq=False)
class JobContext:
    task: Task
    store: TaskStore
    lambda_context: Any = None
    client: Callable[[str], Any] = aws.client  # the boto3 client for a service name
    sleep: Callable[[float], None] = time.sleep
    uploads: UploadReader | None = None
    clock: Callable[[], float] = time.monotonic
    timeout_s: float | None = None  # the job's own limit (``@job(..., timeout_s=...)``), from the context's creation

    def __post_init__(self) -> None:
        self._deadline = None if self.timeout_s is None else self.clock() + self.timeout_s

    @property
    def task_id(self) -> str:
        return self.task.id

    def progress(self, percent: float, message: str | None = None) -> None:
        """Write a new version with ``percent`` done; raise ``Cancelled`` if the task no longer runs, or
        ``JobTimedOut`` (writing nothing) once the job ran past its own timeout."""
        self.check_timeout()

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
        """Seconds left before Lambda stops this invocation or the job's own timeout ends it, whichever comes
        first (infinite outside Lambda for a job without a timeout)."""
        left = math.inf
        if self.lambda_context is not None and hasattr(self.lambda_context, "get_remaining_time_in_millis"):
            left = float(self.lambda_context.get_remaining_time_in_millis()) / 1000
        if self._deadline is not None:
            left = min(left, max(0.0, self._deadline - self.clock()))
        return left

    def timed_out(self) -> bool:
        """Whether the job ran past its own timeout."""
        return self._deadline is not None and self.clock() >= self._deadline

    def check_timeout(self) -> None:
        """Raise ``JobTimedOut`` once the job ran past its own timeout (``progress`` does it too)."""
        if self.timeout_s is not None and self.timed_out():
            raise JobTimedOut(self.timeout_s)

    def open_upload(self, upload_id: str) -> UploadedObject:
        """The task's tenant's upload, checked against its declaration; read it with ``.chunks()``."""
        if self.uploads is None:
            raise JobFailed("this worker has no uploads bucket configured", kind="uploads-unavailable")
        return self.uploads.open(self.task.tenant, upload_id)
