"""The webhook retry handler: SQS messages from the retry queue, each a whole ``WebhookJob``.

- Arrived a second or more before ``not_before`` (SQS delays stop at 15 minutes): back on the queue
  for the rest of the wait — a hop.
- Arrived less than a second early (fractional local schedules): wait out the remainder, then send.
- Otherwise: one attempt; the outcome schedules the next attempt, dead-letters the job, or ends it.

A message that is not a job goes straight to the dead-letter queue (retrying it cannot help). A
message fails (partial batch response, SQS delivers it again) only when AWS itself failed us.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from taskcast.metrics import WEBHOOK_DEAD_LETTERED, MetricsSink
from taskcast.webhooks.delivery import WebhookDelivery
from taskcast.webhooks.format import BadJob, WebhookJob, early_by, hop_needed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryHandler:
    webhooks: WebhookDelivery
    metrics: MetricsSink
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def handle(self, record: SQSRecord) -> str:
        try:
            job = WebhookJob.from_json(record.body)
        except BadJob as error:
            self.webhooks.queue.dead_letter(None, str(error), raw=record.body)
            self.metrics.count(WEBHOOK_DEAD_LETTERED)
            logger.error("retry message is not a webhook job", extra={"message_id": record.message_id})
            return "dead-lettered"
        now = self.clock()
        if hop_needed(job.not_before, now):
            self.webhooks.queue.enqueue(job, now=now)
            return "hop"
        wait = early_by(job.not_before, now)
        if wait > 0:
            self.sleep(wait)
        return self.webhooks.attempt(job).outcome



def handle_retries(
    event: dict[str, Any], context: Any, webhooks: WebhookDelivery, metrics: MetricsSink
) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.SQS)
    handler = RetryHandler(webhooks, metrics)
    try:
        return dict(process_partial_response(event, handler.handle, processor, context))
    finally:
        metrics.flush()
