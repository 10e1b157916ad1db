"""The worker's on-failure destination consumer: see ``taskcast.worker_failure_consumer``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

from taskcast.settings import Settings
from taskcast.worker_failure_consumer import WorkerFailureDeps, handle_failures

DEPS = WorkerFailureDeps.from_settings(Settings.from_env())


def lambda_handler(event: dict[str, Any], context: Any, deps: WorkerFailureDeps = DEPS) -> PartialItemFailureResponse:
    return handle_failures(event, context, deps)
