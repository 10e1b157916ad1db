"""Webhook jobs and the SQS queues that hold them between attempts.

A job carries everything needed to send again, including the exact payload, so the signed body is
byte-for-byte the same on every attempt; only ``webhook-timestamp`` and the signature are fresh.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

from taskcast import aws
from taskcast.webhooks.format import webhook_id
from taskcast.webhooks.policy import sqs_delay


class BadJob(ValueError):
    """A retry message that is not a webhook job."""


@dataclass(frozen=True)
class WebhookJob:
    task_id: str
    tenant: str
    version: int
    callback_url: str
    payload: str
    expires_at: int
    attempt: int = 1
    not_before: float = 0.0  # epoch seconds: do not send before

    @property
    def webhook_id(self) -> str:
        return webhook_id(self.task_id, self.version)

    def next_attempt(self, delay_s: float, now: float) -> WebhookJob:
        return dataclasses.replace(self, attempt=self.attempt + 1, not_before=now + delay_s)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WebhookJob:
        try:
            data = json.loads(text)
            job = cls(
                task_id=str(data["task_id"]),
                tenant=str(data["tenant"]),
                version=int(data["version"]),
                callback_url=str(data["callback_url"]),
                payload=str(data["payload"]),
                expires_at=int(data.get("expires_at", 0)),
                attempt=int(data.get("attempt", 1)),
                not_before=float(data.get("not_before", 0.0)),
            )
        except (ValueError, TypeError, KeyError) as error:
            raise BadJob(f"not a webhook job: {type(error).__name__}") from None
        if job.attempt < 1 or job.version < 1:
            raise BadJob("not a webhook job: attempt and version start at 1")
        return job


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

    def dead_letter(self, job: WebhookJob | None, reason: str, raw: str | None = None) -> None:
        """Park a job that will not be sent again, with the reason, for an operator to look at."""
        if not self.dead_letter_url:
            raise RuntimeError("WEBHOOK_DLQ_URL is not set")
        body = {"job": dataclasses.asdict(job) if job else None, "reason": reason}
        if raw is not None and job is None:
            body["raw"] = raw[:200_000]
        self.client.send_message(QueueUrl=self.dead_letter_url, MessageBody=json.dumps(body))
