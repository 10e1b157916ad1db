"""Worker entry point, invoked asynchronously with ``{"task_id": "..."}``: see ``taskcast.worker_runtime``."""

from __future__ import annotations

from typing import Any

from taskcast.settings import Settings
from taskcast.worker_runtime import WorkerDeps, handle_invocation

DEPS = WorkerDeps.from_settings(Settings.from_env())


def lambda_handler(event: dict[str, Any], context: Any, deps: WorkerDeps = DEPS) -> dict[str, Any]:
    return handle_invocation(event, context, deps)
