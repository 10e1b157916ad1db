"""Worker entry point, invoked asynchronously with ``{"task_id": "..."}``."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from taskcast import aws
from taskcast.jobs.uploaded import UploadReader
from taskcast.results import ResultStore
from taskcast.settings import Settings
from taskcast.store import TaskStore
from taskcast.uploads import UploadStore
from taskcast.worker_runtime import WorkerDeps, run_task

logger = logging.getLogger(__name__)


@cache
def default_deps() -> WorkerDeps:
    settings = Settings.from_env()
    s3 = aws.client("s3")
    return WorkerDeps(
        store=TaskStore(settings.tasks_table, retention_s=settings.retention_s),
        inline_limit_bytes=settings.result_inline_limit_bytes,
        uploads=UploadReader(UploadStore(settings.tasks_table), s3, settings.results_bucket),
        results=ResultStore(settings.results_bucket, s3),
    )


def lambda_handler(event: dict[str, Any], context: Any, deps: WorkerDeps | None = None) -> dict[str, Any]:
    task_id = event.get("task_id") if isinstance(event, dict) else None
    if not isinstance(task_id, str) or not task_id:
        # Nothing to retry or to mark: an event without a task id is a caller's bug.
        logger.error("worker event without a task_id; ignored")
        return {"task_id": None, "status": None}
    target = deps or default_deps()
    try:
        task = run_task(task_id, target, context)
    finally:
        target.metrics.flush()
    return {"task_id": task_id, "status": None if task is None else str(task.status)}
