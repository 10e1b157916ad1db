"""Run one task: claim it (PENDING → RUNNING), run its job, write the outcome.

Every write is a conditional write through the store, so:
- a second invocation for the same task (Lambda's async queue is at-least-once) finds it no longer
  PENDING and does nothing;
- a task cancelled or failed by someone else while the job runs keeps that outcome: the job stops at
  its next progress report, and a late result is dropped.

A result too large for the task record is written to S3 first and the task names it (``result_ref``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskcast import aws
from taskcast.jobs import (
    Cancelled,
    EntryPointSource,
    InvalidJobInput,
    JobContext,
    JobFailed,
    JobRegistry,
    UnknownJob,
    installed_entry_points,
    with_user_jobs,
)
from taskcast.jobs import default_registry as _default_registry
from taskcast.jobs.clients import job_client
from taskcast.jobs.uploaded import UploadReader
from taskcast.metrics import TASKS_FINISHED, MetricsSink, default_metrics
from taskcast.models import Status, Task, problem, transition
from taskcast.results import ResultStore, encode_result, goes_to_s3
from taskcast.settings import Settings
from taskcast.store import TaskStore
from taskcast.uploads import UploadStore

logger = logging.getLogger(__name__)


@dataclass
class WorkerDeps:
    store: TaskStore
    registry: JobRegistry = field(default_factory=lambda: _default_registry)
    inline_limit_bytes: int = 256 * 1024
    client_factory: Callable[[str], Any] = job_client
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    uploads: UploadReader | None = None  # None: jobs cannot read uploads
    results: ResultStore | None = None  # None: results over the inline limit fail the task
    metrics: MetricsSink = field(default_factory=default_metrics)

    @classmethod
    def from_settings(
        cls, settings: Settings, job_entry_points: EntryPointSource = installed_entry_points
    ) -> WorkerDeps:
        """The cold start's dependencies, with the users' jobs loaded into the default registry."""
        s3 = aws.client("s3")
        return cls(
            store=TaskStore(settings.tasks_table, retention_s=settings.retention_s),
            registry=with_user_jobs(settings.job_modules, job_entry_points),
            inline_limit_bytes=settings.result_inline_limit_bytes,
            uploads=UploadReader(UploadStore(settings.tasks_table), s3, settings.results_bucket),
            results=ResultStore(settings.results_bucket, s3),
        )


def job_error(kind: str, title: str, detail: str, status: int = 500, **extra: Any) -> dict[str, Any]:
    return problem(kind, title, status, detail, **extra)


def error_for_exception(error: Exception) -> dict[str, Any]:
    """The RFC 9457 ``error`` a task carries when its job raised ``error``."""
    if isinstance(error, JobFailed):
        return job_error(error.kind, "The job failed", error.detail, **error.extra)
    return job_error("job-failed", "The job failed", f"{type(error).__name__}: {error}")


def not_json(error: Exception) -> dict[str, Any]:
    return job_error("job-failed", "The job failed", f"the job's result is not JSON: {error}")


def too_large(size_bytes: int, limit_bytes: int) -> dict[str, Any]:
    detail = f"the result is {size_bytes} bytes; at most {limit_bytes} bytes are kept inline"
    return job_error("result-too-large", "Result too large", detail)


def claim(task: Task) -> Task | None:
    """PENDING → RUNNING; None (nothing to do) for a task some invocation already took or finished."""
    if task.status is not Status.PENDING:
        return None
    return transition(task, Status.RUNNING, progress=0, message=None)


def finish(status: Status, **changes: Any) -> Callable[[Task], Task | None]:
    def change(task: Task) -> Task | None:
        if task.terminal:
            return None  # cancelled or failed meanwhile: that outcome stands
        return transition(task, status, message=None, **changes)

    return change


def run_task(task_id: str, deps: WorkerDeps, lambda_context: Any = None) -> Task | None:
    """Run the task to its end. Returns the final task written by this worker, or None if it wrote none.

    Counts ``TasksFinished`` by how the run ended: the status this worker wrote, or CANCELLED when the
    task ended elsewhere while the job ran (a cancel: a timed-out worker is marked only once it is gone).
    """
    task = deps.store.update(task_id, claim)
    if task is None:
        logger.info("task %s is missing, already running or finished; nothing to do", task_id)
        return None
    written = _run_claimed(task, deps, lambda_context)
    deps.metrics.count(TASKS_FINISHED, Status=str(written.status if written is not None else Status.CANCELLED))
    return written


def _run_claimed(task: Task, deps: WorkerDeps, lambda_context: Any) -> Task | None:
    task_id = task.id
    try:
        spec = deps.registry.get(task.type)
        job_input = spec.parse(task.input)
    except (UnknownJob, InvalidJobInput) as error:
        return deps.store.update(
            task_id, finish(Status.FAILED, error=job_error("invalid-job", "The job cannot run", str(error), 400))
        )

    ctx = JobContext(
        task, deps.store, lambda_context, client=deps.client_factory, sleep=deps.sleep, clock=deps.clock,
        uploads=deps.uploads, timeout_s=spec.timeout_s,
    )
    try:
        result = spec.function(job_input, ctx)
        ctx.check_timeout()  # a job that returned past its own timeout fails all the same
    except Cancelled:
        logger.info("task %s stopped: it was cancelled or ended while running", task_id)
        return None
    except Exception as error:  # any failure of the job is the task's failure
        logger.info("task %s failed: %s", task_id, type(error).__name__)
        return deps.store.update(task_id, finish(Status.FAILED, error=error_for_exception(error)))

    status, changes = result_outcome(task, result, deps)
    written = deps.store.update(task_id, finish(status, **changes))
    if written is None:
        logger.info("task %s ended elsewhere before its result was written; result dropped", task_id)
    return written


def result_outcome(task: Task, result: Any, deps: WorkerDeps) -> tuple[Status, dict[str, Any]]:
    """How the task ends with ``result``: SUCCEEDED holding it inline or as ``result_ref`` (an S3 object),
    or FAILED when it is not JSON or is too large with no bucket to put it in, or storing it failed."""
    try:
        encoded = encode_result(result)
    except (TypeError, ValueError) as error:
        return Status.FAILED, {"error": not_json(error)}
    input_bytes = len(json.dumps(task.input).encode())
    if not goes_to_s3(len(encoded), input_bytes, deps.inline_limit_bytes):
        return Status.SUCCEEDED, {"result": result}
    if deps.results is None:
        return Status.FAILED, {"error": too_large(len(encoded), deps.inline_limit_bytes)}
    try:
        return Status.SUCCEEDED, {"result_ref": deps.results.put(task, encoded)}
    except Exception as error:  # noqa: BLE001 - any storage failure fails the task, with its cause
        logger.error("task %s: storing its result failed: %s", task.id, type(error).__name__)
        detail = f"writing the result to S3 failed: {type(error).__name__}"
        return Status.FAILED, {"error": job_error("result-not-stored", "The result could not be stored", detail)}


def handle_invocation(event: Any, context: Any, deps: WorkerDeps) -> dict[str, Any]:
    """The worker function's answer to an asynchronous invoke with ``{"task_id": "..."}``."""
    task_id = event.get("task_id") if isinstance(event, dict) else None
    if not isinstance(task_id, str) or not task_id:
        # Nothing to retry or to mark: an event without a task id is a caller's bug.
        logger.error("worker event without a task_id; ignored")
        return {"task_id": None, "status": None}
    try:
        task = run_task(task_id, deps, context)
    finally:
        deps.metrics.flush()
    return {"task_id": task_id, "status": None if task is None else str(task.status)}
