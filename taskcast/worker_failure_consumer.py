"""Consuming the worker failure queue (SQS, partial batch responses): tasks whose worker is gone.

Two kinds of message arrive:

- a Lambda async invocation record (the worker's on-failure destination) for a worker that timed out or
  crashed; the task, if still unfinished, ends FAILED with ``error.type`` ending ``/timeout`` or
  ``/worker-crashed``;
- a heartbeat check of an external job, sent delayed to its deadline (``taskcast.heartbeats``): a task whose
  worker stayed silent past it ends FAILED ``/heartbeat-timeout``; otherwise the check is sent on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from taskcast.external_queues import HeartbeatChecks
from taskcast.heartbeats import (
    CheckAgain,
    HeartbeatCheck,
    NotACheck,
    TimedOut,
    is_check,
    parse_check,
    time_out,
    verdict,
)
from taskcast.metrics import WORKER_FAILURES_HANDLED, MetricsSink, default_metrics
from taskcast.settings import Settings
from taskcast.store import Heartbeats, TaskStore
from taskcast.worker_failures import NotAnInvocationRecord, fail_unfinished, parse_invocation_record

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerFailureDeps:
    store: TaskStore
    metrics: MetricsSink = field(default_factory=default_metrics)
    heartbeats: Heartbeats | None = None  # None: heartbeat checks cannot be handled (they are retried)
    checks: HeartbeatChecks | None = None
    clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerFailureDeps:
        return cls(
            store=TaskStore(settings.tasks_table, retention_s=settings.retention_s),
            heartbeats=Heartbeats(settings.tasks_table),
            checks=HeartbeatChecks(settings.worker_failure_queue_url),
        )


def handle_check(body: str, deps: WorkerFailureDeps) -> None:
    if deps.heartbeats is None or deps.checks is None:
        raise RuntimeError("this function was given no heartbeat store or check queue")
    try:
        check = parse_check(body)
    except NotACheck as error:
        logger.error("a heartbeat check that cannot be read (%s); dropped", error)
        return
    task = deps.store.get(check.task_id)
    now = deps.clock()
    found = verdict(task, deps.heartbeats.last(check.task_id), check, now)
    if isinstance(found, CheckAgain):
        deps.checks.send(HeartbeatCheck(check.task_id, found.not_before), now)
    elif isinstance(found, TimedOut):
        written = deps.store.update(check.task_id, time_out(found.silent_s))
        if written is not None:
            logger.info("task %s marked FAILED: its external worker stopped reporting", check.task_id)
            deps.metrics.count(WORKER_FAILURES_HANDLED, Cause="heartbeat")


def handle_message(record: SQSRecord, deps: WorkerFailureDeps) -> None:
    if is_check(record.body):
        handle_check(record.body, deps)
    else:
        handle_record(record, deps.store, deps.metrics)


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
            record_handler=lambda record: handle_message(record, deps),
            processor=processor,
            context=context,
        )
    finally:
        deps.metrics.flush()
