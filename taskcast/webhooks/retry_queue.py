"""The SQS queues of webhook jobs: the delivery queue (first attempts handed off by the stream consumer,
retries, jobs put back unattempted) and the dead-letter queue (the job itself: ``taskcast.webhooks.format``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from taskcast import aws
from taskcast.webhooks.format import WebhookJob, sqs_delay

SQS_BATCH_LIMIT = 10
SQS_BATCH_BYTES = 256 * 1024  # one SendMessageBatch call's bodies together


def _batches(jobs: list[WebhookJob], now: float) -> list[list[dict[str, Any]]]:
    """``send_message_batch`` entries, at most ten and 256 KiB of bodies per call; ``Id`` is the index."""
    batches: list[list[dict[str, Any]]] = []
    size = 0
    for index, job in enumerate(jobs):
        body = job.to_json()
        length = len(body.encode())
        if not batches or len(batches[-1]) == SQS_BATCH_LIMIT or size + length > SQS_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append({"Id": str(index), "MessageBody": body, "DelaySeconds": sqs_delay(job.not_before - now)})
        size += length
    return batches


class RetryQueue:
    def __init__(self, queue_url: str, dead_letter_url: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url
        self.client = client or aws.client("sqs")

    def enqueue(self, job: WebhookJob, now: float | None = None) -> None:
        """Put ``job`` on the retry queue, delayed until ``job.not_before`` (or SQS's maximum, then hop)."""
        now = time.time() if now is None else now
        if not self.queue_url:
            raise RuntimeError("WEBHOOK_RETRY_QUEUE_URL is not set")
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=job.to_json(),
            DelaySeconds=sqs_delay(job.not_before - now),
        )

    def enqueue_many(self, jobs: list[WebhookJob], now: float | None = None) -> list[int]:
        """Put ``jobs`` on the queue, ten per call; the indexes (into ``jobs``) of those SQS refused."""
        now = time.time() if now is None else now
        if not self.queue_url:
            raise RuntimeError("WEBHOOK_RETRY_QUEUE_URL is not set")
        failed: list[int] = []
        for entries in _batches(jobs, now):
            answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed.extend(int(entry["Id"]) for entry in answer.get("Failed") or [])
        return failed

    def dead_letter(self, job: WebhookJob | None, reason: str, raw: str | None = None) -> None:
        """Park a job that will not be sent again, with the reason, for an operator to look at."""
        if not self.dead_letter_url:
            raise RuntimeError("WEBHOOK_DLQ_URL is not set")
        body = {"job": dataclasses.asdict(job) if job else None, "reason": reason}
        if raw is not None and job is None:
            body["raw"] = raw[:200_000]
        self.client.send_message(QueueUrl=self.dead_letter_url, MessageBody=json.dumps(body))
