"""Consuming the upload events queue (SQS, partial batch responses).

S3 notifies the queue when an object lands under ``uploads/``: the task created with that upload
(``POST /uploads`` with ``"task"``), if it still waits, is started with an asynchronous invoke of the
worker, which checks the object against the declaration before reading it. Deadline messages fail a
task whose upload never came (``/upload-expired``). See ``taskcast/upload_events.py``.
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

from taskcast import aws
from taskcast.api.deps import LambdaWorkerInvoker, WorkerInvoker
from taskcast.metrics import UPLOADS_ARRIVED, UPLOADS_EXPIRED, MetricsSink, default_metrics
from taskcast.settings import Settings
from taskcast.store import TaskStore
from taskcast.upload_events import (
    NotAnUploadMessage,
    ObjectCreated,
    UploadDeadline,
    delay_seconds,
    expire_if_waiting,
    parse_message,
    waits_for,
)
from taskcast.upload_queue import DeadlineQueue, object_exists
from taskcast.uploads import Upload, UploadStore, parse_upload_key

logger = logging.getLogger(__name__)


@dataclass
class UploadEventDeps:
    settings: Settings
    store: TaskStore
    uploads: UploadStore
    s3: Any
    invoke_worker: WorkerInvoker
    deadlines: DeadlineQueue
    clock: Callable[[], float] = field(default=time.time)
    metrics: MetricsSink = field(default_factory=default_metrics)

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadEventDeps:
        dynamodb = aws.client("dynamodb")
        return cls(
            settings=settings,
            store=TaskStore(settings.tasks_table, dynamodb, retention_s=settings.retention_s),
            uploads=UploadStore(settings.tasks_table, dynamodb, retention_s=settings.retention_s),
            s3=aws.client("s3"),
            invoke_worker=LambdaWorkerInvoker.from_settings(settings),
            deadlines=DeadlineQueue(settings.upload_events_queue_url),
        )


def start_if_waiting(upload: Upload, deps: UploadEventDeps) -> bool:
    """Invoke the worker for the task waiting for ``upload``; a repeated event finds it no longer PENDING
    (or the worker's claim does), so a task runs once however often S3 reports its object."""
    if upload.task_id is None:
        return False
    task = deps.store.get(upload.task_id)
    if task is None or not waits_for(task, upload):
        return False
    deps.invoke_worker(task.id, task.worker_class)  # a failure is raised: the message comes back, is retried
    deps.metrics.count(UPLOADS_ARRIVED)
    logger.info("upload %s landed; task %s started", upload.id, upload.task_id)
    return True


def on_object_created(created: ObjectCreated, deps: UploadEventDeps) -> None:
    if created.bucket != deps.settings.results_bucket:
        logger.warning("event for another bucket (%s) ignored", created.bucket)
        return
    parsed = parse_upload_key(created.key)
    upload = deps.uploads.get_for_tenant(parsed[1], parsed[0]) if parsed else None
    if upload is None:
        logger.warning("object %s is not a declared upload; ignored", created.key)
        return
    if not start_if_waiting(upload, deps):
        logger.info("upload %s landed; no task waits for it", upload.id)


def on_deadline(deadline: UploadDeadline, deps: UploadEventDeps) -> None:
    now = deps.clock()
    if now < deadline.not_before:
        deps.deadlines.send(deadline, delay_seconds(deadline.not_before, now))
        return
    upload = deps.uploads.get(deadline.upload_id)
    if upload is None or upload.task_id != deadline.task_id:
        return
    if not waits_for(deps.store.get(deadline.task_id), upload):
        return  # started, cancelled or gone: nothing to do
    if object_exists(deps.s3, deps.settings.results_bucket, upload.key):
        start_if_waiting(upload, deps)  # the object came but its event did not (yet)
        return
    if deps.store.update(deadline.task_id, expire_if_waiting(upload)) is not None:
        deps.metrics.count(UPLOADS_EXPIRED)
        logger.info("task %s failed: upload %s never arrived", deadline.task_id, upload.id)


def handle_record(record: SQSRecord, deps: UploadEventDeps) -> None:
    try:
        parsed = parse_message(record.body)
    except NotAnUploadMessage as error:
        # Retrying cannot fix a malformed message; drop it loudly instead of looping.
        logger.error("message %s is not an upload event (%s); dropped", record.message_id, error)
        return
    if isinstance(parsed, UploadDeadline):
        on_deadline(parsed, deps)
        return
    for created in parsed:
        on_object_created(created, deps)


def handle_events(event: dict[str, Any], context: Any, deps: UploadEventDeps) -> PartialItemFailureResponse:
    processor = BatchProcessor(event_type=EventType.SQS)
    try:
        return process_partial_response(
            event=event,
            record_handler=lambda record: handle_record(record, deps),
            processor=processor,
            context=context,
        )
    finally:
        deps.metrics.flush()
