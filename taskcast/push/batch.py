"""One DynamoDB Streams batch: every task change pushed to WebSocket subscribers and handed to webhook delivery.

Records are handled one after another, in stream order, so a task's versions go out in order; within
a record the WebSocket posts run concurrently. A change with a callback becomes a first-attempt
``WebhookJob``; the jobs of the batch are put on the delivery queue at the end, ten per SQS call. The
consumer never calls a receiver and never waits for one: the delivery function does that
(``taskcast.webhooks.retry``), so no tenant's callback can hold the WebSocket pushes back.

A record fails (partial batch response, the stream delivers it again) when a subscriber could not be
reached after the retries, when its task state is unreadable, when an earlier change of the same task
failed in this batch (a later version must not overtake it), or when SQS refused its webhook job.
Replays are cheap and safe: the FANOUT marker skips what already went out, and the delivery function
drops a first attempt that is already in the delivery log.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from botocore.exceptions import BotoCoreError, ClientError

from taskcast.metrics import STATUS_CHANGES, STREAM_RECORDS
from taskcast.push.deps import PushDeps
from taskcast.push.fanout import FanoutReport, PoisonRecord, parse_stream_record
from taskcast.store import parse_item_key
from taskcast.webhooks.delivery import job_for
from taskcast.webhooks.format import WebhookJob

logger = logging.getLogger(__name__)


class EarlierChangeFailed(Exception):
    """An earlier version of this task failed in the same batch; this one must wait for it."""


class Batch:
    """The state of one invocation: per-task markers, failed tasks, and the webhook jobs to hand off."""

    def __init__(self, push: PushDeps) -> None:
        self.push = push
        self.fanned_out: dict[str, int] = {}
        self.failed_tasks: set[str] = set()
        self._jobs: list[tuple[str, WebhookJob]] = []  # (sequence number, first attempt)

    def handle(self, record: DynamoDBRecord) -> FanoutReport | None:
        raw = record.raw_event
        task_id, _ = parse_item_key((raw.get("dynamodb") or {}).get("Keys") or {})
        if task_id in self.failed_tasks:
            raise EarlierChangeFailed(task_id)
        try:
            change = parse_stream_record(raw)
            if change is None:
                return None
            job = job_for(change.task)
            if job is not None:
                # Handed off even when the fan-out below fails: a poison record still gets its webhook.
                self._jobs.append((change.sequence_number, job))
            report = self.push.fanout.fan_out(change, self.fanned_out)
            # Counted once handled: a record that fails is counted when it comes back and succeeds.
            self.push.metrics.count(STATUS_CHANGES, Status=str(change.task.status))
        except Exception as error:
            self.failed_tasks.add(task_id)
            level = logging.ERROR if isinstance(error, PoisonRecord) else logging.WARNING
            logger.log(level, "stream record failed", extra={"task_id": task_id, "error": str(error)})
            raise
        return report

    def hand_off(self) -> list[str]:
        """Put the webhook jobs on the delivery queue; the sequence numbers of changes whose job SQS
        refused (or could not be reached for), so that the stream delivers them again."""
        if not self._jobs:
            return []
        jobs = [job for _, job in self._jobs]
        try:
            refused = set(self.push.webhook_queue.enqueue_many(jobs))
        except (BotoCoreError, ClientError) as error:
            logger.error("webhook hand-off failed", extra={"error": str(error), "jobs": len(jobs)})
            refused = set(range(len(jobs)))
        for index in sorted(refused):
            logger.error("webhook hand-off failed", extra={"sequence_number": self._jobs[index][0]})
        return [self._jobs[index][0] for index in sorted(refused)]


def handle_batch(event: dict[str, Any], context: Any, push: PushDeps) -> dict[str, Any]:
    try:
        return _handle_batch(event, context, push)
    finally:
        push.metrics.flush()


def _handle_batch(event: dict[str, Any], context: Any, push: PushDeps) -> dict[str, Any]:
    push.metrics.count(STREAM_RECORDS, len(event.get("Records") or []))
    batch = Batch(push)
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    try:
        response = dict(process_partial_response(event, batch.handle, processor, context))
    finally:
        late = batch.hand_off()
    if late:
        failures = list(cast(list[dict[str, str]], response.get("batchItemFailures", [])))
        known = {failure["itemIdentifier"] for failure in failures}
        failures.extend({"itemIdentifier": number} for number in late if number not in known)
        response["batchItemFailures"] = failures
    return response
