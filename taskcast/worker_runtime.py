"""Run one task: claim it (PENDING → RUNNING), run its job, write the outcome.

Every write is a conditional write through the store, so:
- a second invocation for the same task (Lambda's async queue is at-least-once) finds it no longer
  PENDING and does nothing;
- a task cancelled or failed by someone else while the job runs keeps that outcome: the job stops at
  its next progress report, and a late result is dropped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskcast.jobs import Cancelled, InvalidJobInput, JobContext, JobFailed, JobRegistry, UnknownJob
from taskcast.jobs import default_registry as _default_registry
from taskcast.jobs.clients import job_client
from taskcast.models import Status, Task, problem, transition
from taskcast.store import TaskStore

logger = logging.getLogger(__name__)


@dataclass
class WorkerDeps:
    store: TaskStore
    registry: JobRegistry = field(default_factory=lambda: _default_registry)
    inline_limit_bytes: int = 256 * 1024
    client_factory: Callable[[str], Any] = job_client
    sleep: Callable[[float], None] = time.sleep


def job_error(kind: str, title: str, detail: str, status: int = 500, **extra: Any) -> dict[str, Any]:
    return problem(kind, title, status, detail, **extra)


def error_for_exception(error: Exception) -> dict[str, Any]:
    """The RFC 9457 ``error`` a task carries when its job raised ``error``."""
    if isinstance(error, JobFailed):
        return job_error(error.kind, "The job failed", error.detail, **error.extra)
    return job_error("job-failed", "The job failed", f"{type(error).__name__}: {error}")


def result_refusal(result: Any, limit_bytes: int) -> dict[str, Any] | None:
    """Why ``result`` cannot be stored inline, as an error; None when it can."""
    try:
        encoded = json.dumps(result).encode()
    except (TypeError, ValueError) as error:
        return job_error("job-failed", "The job failed", f"the job's result is not JSON: {error}")
    if len(encoded) > limit_bytes:
        return job_error(
            "result-too-large",
            "Result too large",
            f"the result is {len(encoded)} bytes; at most {limit_bytes} bytes are kept inline",
        )
    return None


def claim(task: Task) -> Task | None:
    """PENDING → RUNNING; None (nothing to do) for a task some invocation already took or finished."""
    if task.status is not Status.PENDING:
        return None
    return transition(task, Status.RUNNING, progress=0)


def finish(status: Status, **changes: Any) -> Callable[[Task], Task | None]:
    def change(task: Task) -> Task | None:
        if task.terminal:
            return None  # cancelled or failed meanwhile: that outcome stands
        return transition(task, status, message=None, **changes)

    return change


def run_task(task_id: str, deps: WorkerDeps, lambda_context: Any = None) -> Task | None:
    """Run the task to its end. Returns the final task written by this worker, or None if it wrote none."""
    task = deps.store.update(task_id, claim)
    if task is None:
        logger.info("task %s is missing, already running or finished; nothing to do", task_id)
        return None

    try:
        spec = deps.registry.get(task.type)
        job_input = spec.parse(task.input)
    except (UnknownJob, InvalidJobInput) as error:
        return deps.store.update(
            task_id, finish(Status.FAILED, error=job_error("invalid-job", "The job cannot run", str(error), 400))
        )

    ctx = JobContext(task, deps.store, lambda_context, client_factory=deps.client_factory, sleep=deps.sleep)
    try:
        result = spec.function(job_input, ctx)
    except Cancelled:
        logger.info("task %s stopped: it was cancelled or ended while running", task_id)
        return None
    except Exception as error:  # any failure of the job is the task's failure
        logger.info("task %s failed: %s", task_id, type(error).__name__)
        return deps.store.update(task_id, finish(Status.FAILED, error=error_for_exception(error)))

    refusal = result_refusal(result, deps.inline_limit_bytes)
    if refusal is not None:
        return deps.store.update(task_id, finish(Status.FAILED, error=refusal))
    written = deps.store.update(task_id, finish(Status.SUCCEEDED, result=result))
    if written is None:
        logger.info("task %s ended elsewhere before its result was written; result dropped", task_id)
    return written
