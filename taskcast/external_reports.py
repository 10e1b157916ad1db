"""What an external worker's report does to its task (pure functions over the task).

Every report that changes something is an ordinary status change (a new version through the store's
conditional write), so push, history, long-poll and ``303`` treat it like a Lambda worker's:

- the first report (whatever it is) moves the task from ``PENDING`` (queued for a worker) to ``RUNNING``;
- ``progress`` writes a version with the new percent and message;
- ``heartbeat`` writes nothing once the task runs (only the beat, kept apart from the task);
- ``succeed`` and ``fail`` end it.

A report on a task that has ended (succeeded, failed, timed out, cancelled) is refused with ``TaskEnded``:
that is how the worker learns of a cancellation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskcast.models import PROBLEM_BASE, Status, Task, problem, transition

Change = Callable[[Task], Task | None]


class TaskEnded(Exception):
    """The task has ended; its token is no longer good for anything."""

    def __init__(self, task: Task) -> None:
        super().__init__(f"task {task.id} has ended {task.status}")
        self.task = task


def _running(task: Task) -> Task:
    if task.terminal:
        raise TaskEnded(task)
    return task


def start(task: Task) -> Task | None:
    """PENDING → RUNNING on the worker's first report; nothing for a running task."""
    if _running(task).status is Status.PENDING:
        return transition(task, Status.RUNNING, progress=0, message=None)
    return None


def report_progress(percent: float, message: str | None) -> Change:
    def change(task: Task) -> Task | None:
        return transition(_running(task), Status.RUNNING, progress=int(percent), message=message)

    return change


def succeed(**outcome: Any) -> Change:
    """SUCCEEDED with ``result=`` (inline) or ``result_ref=`` (an S3 object)."""

    def change(task: Task) -> Task | None:
        return transition(_running(task), Status.SUCCEEDED, message=None, **outcome)

    return change


def fail(error: dict[str, Any]) -> Change:
    def change(task: Task) -> Task | None:
        return transition(_running(task), Status.FAILED, error=error, message=None)

    return change


def worker_problem(reported: dict[str, Any]) -> dict[str, Any]:
    """The task's ``error`` from the problem the worker sent: a bare ``type`` such as ``"corrupt-video"`` is
    made a taskcast problem type (like ``JobFailed(kind=...)``); an absolute URI is kept as it is."""
    kind = str(reported.get("type") or "job-failed")
    extra = {key: value for key, value in reported.items() if key not in {"type", "title", "status", "detail"}}
    error = problem(
        "job-failed",
        str(reported.get("title") or "The job failed"),
        int(reported.get("status") or 500),
        str(reported.get("detail") or "The external worker reported a failure."),
        **extra,
    )
    error["type"] = kind if "://" in kind else f"{PROBLEM_BASE}/{kind.lstrip('/')}"
    return error
