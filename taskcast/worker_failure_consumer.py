"""Consuming the worker's on-failure destination (SQS, partial batch responses).

Each message is a Lambda async invocation record for a worker that timed out or crashed; the task,
if still unfinished, ends FAILED with ``error.type`` ending ``/timeout`` or ``/worker-crashed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from taskcast.metrics import WORKER_FAILURES_HANDLED, MetricsSink, default_metrics
from taskcast.settings import Settings
from taskcast.store import TaskStore
from taskcast.worker_failures import NotAnInvocationRecord, fail_unfinished, parse_invocation_record

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerFailureDeps:
    store: TaskStore
    metrics: MetricsSink = field(default_factory=default_metrics)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerFailureDeps:
        return cls(store=TaskStore(settings.tasks_table, retention_s=settings.retention_s))


def handle_record(record: SQSRecord, store: TaskStore, metrics: MetricsSink) -> None:
    try:
        failure = parse_invocation_record(record.body)
    except NotAnInvocationRecord as error:
        # Retrying cannot fix a malformed record; drop it loudly instead of looping.
        logger.error("message %s is not a worker invocation record (%s); dropped", record.message_id, error)
        return
    written = store.update(failure.task_id, fail_unfinished(failure))
    if written is None:
        logger.info("task %s was already finished or is gone; failure record ignored", failure.task_id)
    else:
        logger.info("task %s marked FAILED: %s", failure.task_id, written.error and written.error["type"])
        metrics.count(WORKER_FAILURES_HANDLED, Cause="timeout" if failure.timed_out else "crash")


def handle_failures(event: dict[str, Any], context: Any, deps: WorkerFailureDeps) -> PartialItemFailureResponse:
    processor = BatchProcessor(event_type=EventType.SQS)
    try:
        return process_partial_response(
            event=event,
            record_handler=lambda record: handle_record(record, deps.store, deps.metrics),
            processor=processor,
            context=context,
        )
    finally:
        deps.metrics.flush()
