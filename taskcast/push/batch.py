"""One DynamoDB Streams batch: every task change pushed to WebSocket subscribers and to the webhook.

Records are handled one after another, in stream order, so a task's versions go out in order; within
a record the WebSocket posts run concurrently. Each change's first webhook attempt starts at once in
the webhook pool (in order per task) and the batch waits for those attempts before returning; a
delivery that fails goes to the retry queue and never fails the batch.

A record fails (partial batch response, the stream delivers it again) when a subscriber could not be
reached after the retries, when its task state is unreadable, or when an earlier change of the same task
failed in this batch (a later version must not overtake it). Replays are cheap and safe: the FANOUT
marker and the delivery log skip what already went out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, cast

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from taskcast.metrics import STATUS_CHANGES, STREAM_RECORDS
from taskcast.push.deps import PushDeps
from taskcast.push.fanout import FanoutReport, PoisonRecord, StateChange, parse_stream_record
from taskcast.store import parse_item_key

logger = logging.getLogger(__name__)

# Leave this much of the invocation's time after the last webhook attempt that may start.
_DEADLINE_MARGIN_S = 2.0


class EarlierChangeFailed(Exception):
    """An earlier version of this task failed in the same batch; this one must wait for it."""


class Batch:
    """The state of one invocation: per-task markers, failed tasks, and webhook attempts in flight."""

    def __init__(self, push: PushDeps, webhook_deadline: float | None = None) -> None:
        self.push = push
        self.webhook_deadline = webhook_deadline  # time.monotonic() after which attempts are deferred
        self.fanned_out: dict[str, int] = {}
        self.failed_tasks: set[str] = set()
        self._webhook_tail: dict[str, Future[None]] = {}
        self._webhooks: list[tuple[str, Future[None]]] = []

    def handle(self, record: DynamoDBRecord) -> FanoutReport | None:
        raw = record.raw_event
        task_id, _ = parse_item_key((raw.get("dynamodb") or {}).get("Keys") or {})
        if task_id in self.failed_tasks:
            raise EarlierChangeFailed(task_id)
        try:
            change = parse_stream_record(raw)
            if change is None:
                return None
            self._start_webhook(change)
            report = self.push.fanout.fan_out(change, self.fanned_out)
            # Counted once handled: a record that fails is counted when it comes back and succeeds.
            self.push.metrics.count(STATUS_CHANGES, Status=str(change.task.status))
        except Exception as error:
            self.failed_tasks.add(task_id)
            level = logging.ERROR if isinstance(error, PoisonRecord) else logging.WARNING
            logger.log(level, "stream record failed", extra={"task_id": task_id, "error": str(error)})
            raise
        return report

    def _start_webhook(self, change: StateChange) -> None:
        if not change.task.callback_url:
            return
        previous = self._webhook_tail.get(change.task.id)
        future = self.push.webhook_pool.submit(self._webhook, previous, change)
        self._webhook_tail[change.task.id] = future
        self._webhooks.append((change.sequence_number, future))

    def _webhook(self, previous: Future[None] | None, change: StateChange) -> None:
        if previous is not None:
            # Keep a task's webhooks in version order; the earlier one's own failure is reported apart.
            previous.exception()
        if self.webhook_deadline is not None and time.monotonic() > self.webhook_deadline:
            self.push.webhooks.defer(change.task)
            return
        self.push.webhooks.first_attempt(change.task)

    def finish(self) -> list[str]:
        """Wait for the webhook attempts; the sequence numbers of changes whose webhook could not even be
        queued (an AWS error, not a receiver's), so that the stream delivers them again."""
        failed: list[str] = []
        for sequence_number, future in self._webhooks:
            error = future.exception()
            if error is not None:
                logger.error("webhook hand-off failed", extra={"sequence_number": sequence_number, "error": str(error)})
                failed.append(sequence_number)
        return failed


def _webhook_deadline(context: Any, push: PushDeps) -> float | None:
    remaining_ms: Callable[[], float] | None = getattr(context, "get_remaining_time_in_millis", None)
    if remaining_ms is None:
        return None
    budget = remaining_ms() / 1000 - push.settings.webhook_timeout_s - _DEADLINE_MARGIN_S
    return time.monotonic() + max(0.0, budget)


def handle_batch(event: dict[str, Any], context: Any, push: PushDeps) -> dict[str, Any]:
    try:
        return _handle_batch(event, context, push)
    finally:
        push.metrics.flush()  # after batch.finish(): the webhook attempts have been counted


def _handle_batch(event: dict[str, Any], context: Any, push: PushDeps) -> dict[str, Any]:
    push.metrics.count(STREAM_RECORDS, len(event.get("Records") or []))
    batch = Batch(push, _webhook_deadline(context, push))
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    try:
        response = dict(process_partial_response(event, batch.handle, processor, context))
    finally:
        late = batch.finish()
    if late:
        failures = list(cast(list[dict[str, str]], response.get("batchItemFailures", [])))
        known = {failure["itemIdentifier"] for failure in failures}
        failures.extend({"itemIdentifier": number} for number in late if number not in known)
        response["batchItemFailures"] = failures
    return response

