"""A webhook as plain data and pure functions: the Standard Webhooks wire format, the job that carries
it between attempts, and what to do after an attempt.

Format. Signatures come from ``standardwebhooks.Webhook.sign`` (never a hand-rolled HMAC). During a
secret rotation a tenant has several secrets: one ``v1,…`` signature per secret, space-separated, so a
receiver holding either the old or the new secret verifies the message.

Job. A job carries everything needed to send again, including the exact payload, so the signed body is
byte-for-byte the same on every attempt; only ``webhook-timestamp`` and the signature are fresh.

Policy.
What to do after a webhook attempt, and how to wait for the next one: pure functions.

- 2xx → ``delivered``;
- 410 → ``disabled`` (the receiver asked us to stop: the task's callback is switched off);
- anything else (3xx included, since redirects are not followed), a timeout, a refused address or a
  connection error → ``retrying`` after the schedule's next delay — or, for 429/503 with
  ``Retry-After``, after that delay (capped) — until the schedule is spent, then ``failed`` (DLQ).

``schedule`` has N delays for N + 1 attempts: attempt 1 is immediate, attempt k + 1 waits ``schedule[k - 1]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from standardwebhooks import Webhook

EVENT_TYPE = "task.status"
USER_AGENT = "taskcast-webhooks/1"


def webhook_id(task_id: str, version: int, endpoint_id: str = "") -> str:
    """Stable across retries (and replays), so receivers can drop repeats; a registered endpoint's own
    deliveries carry its id first, so that two endpoints of one receiver never share one."""
    return f"{endpoint_id}.{task_id}.{version}" if endpoint_id else f"{task_id}.{version}"


def webhook_body(message: Mapping[str, Any]) -> str:
    """``{"type", "timestamp", "data"}``; ``timestamp`` is when the change happened, so the body is the
    same on every attempt and in every replay."""
    envelope = {"type": EVENT_TYPE, "timestamp": message["at"], "data": dict(message)}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


def signature_header(secrets: Iterable[str], message_id: str, sent_at: datetime, payload: str) -> str:
    signatures = [Webhook(secret).sign(message_id, sent_at, payload) for secret in secrets]
    if not signatures:
        raise ValueError("no webhook secret to sign with")
    return " ".join(signatures)


def signed_headers(
    secrets: Iterable[str], message_id: str, payload: str, sent_at: datetime | None = None
) -> dict[str, str]:
    """Headers for one attempt: the timestamp is the attempt's own (receivers refuse stale ones)."""
    moment = (sent_at or datetime.now(UTC)).replace(microsecond=0)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature_header(secrets, message_id, moment, payload),
    }


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
    # Handed off by the stream consumer: a replayed stream record hands the same first attempt off again,
    # so the delivery function drops such a job once its first attempt is in the delivery log.
    from_stream: bool = False
    deferrals: int = 0  # times in a row the job went back on the queue untried (it backs off)
    # A registered endpoint's delivery (``taskcast.webhooks.endpoints``): its URL and secrets are read at
    # attempt time, ``callback_url`` is only where it pointed at hand-off. "": a task's own callback.
    endpoint_id: str = ""

    @property
    def webhook_id(self) -> str:
        return webhook_id(self.task_id, self.version, self.endpoint_id)

    def next_attempt(self, delay_s: float, now: float) -> WebhookJob:
        return dataclasses.replace(
            self, attempt=self.attempt + 1, not_before=now + delay_s, from_stream=False, deferrals=0
        )

    def put_off(self, delay_s: float, now: float, *, busy: bool = False) -> WebhookJob:
        """The same attempt, later: the job was not attempted (no slot, open breaker, no time left).
        ``busy`` (its tenant or its endpoint's probe was busy) counts towards the job's back-off."""
        return dataclasses.replace(self, not_before=now + delay_s, deferrals=self.deferrals + int(busy))

    @property
    def endpoint(self) -> str:
        """Where it goes, as the circuit breaker sees it: the tenant and the callback URL's origin."""
        if self.endpoint_id:
            return f"{self.tenant} {self.endpoint_id}"
        parts = urlsplit(self.callback_url)
        return f"{self.tenant} {parts.scheme}://{parts.netloc.rpartition('@')[2].lower()}"

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        if not self.endpoint_id:
            del data["endpoint_id"]  # a task's callback job reads as it always did
        return json.dumps(data, separators=(",", ":"))

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
                from_stream=data.get("from_stream") is True,
                deferrals=int(data.get("deferrals", 0)),
                endpoint_id=str(data.get("endpoint_id") or ""),
            )
        except (ValueError, TypeError, KeyError) as error:
            raise BadJob(f"not a webhook job: {type(error).__name__}") from None
        if job.attempt < 1 or job.version < 1:
            raise BadJob("not a webhook job: attempt and version start at 1")
        return job


# --- policy ---------------------------------------------------------------------------------------

Outcome = Literal["delivered", "retrying", "failed", "disabled"]

# SQS cannot delay a message longer than 15 minutes; longer waits are reached in hops.
SQS_MAX_DELAY_S = 900
# A receiver's Retry-After is honoured up to this bound (and never beyond the schedule's longest wait).
RETRY_AFTER_CAP_S = 6 * 3600.0
_HONOURS_RETRY_AFTER = frozenset({429, 503})


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt saw: a status code, or an error (timeout, refused address, connection)."""

    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None
    unreachable: bool = False  # a timeout or a connection error: the endpoint itself is failing


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    delay_s: float | None = None  # before the next attempt, when retrying


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    moment = now or datetime.now(UTC)
    return max(0.0, (when - moment).total_seconds())


def decide(result: AttemptResult, attempt: int, schedule: Sequence[float]) -> Decision:
    """The outcome of attempt number ``attempt`` (1-based) and, when retrying, the delay before the next."""
    code = result.status_code
    if code is not None and 200 <= code < 300:
        return Decision("delivered")
    if code == 410:
        return Decision("disabled")
    if attempt > len(schedule):
        return Decision("failed")
    delay = float(schedule[attempt - 1])
    if code in _HONOURS_RETRY_AFTER and result.retry_after_s is not None:
        cap = min(RETRY_AFTER_CAP_S, max(schedule, default=0.0))
        delay = min(max(0.0, result.retry_after_s), cap)
    return Decision("retrying", delay)


def sqs_delay(remaining_s: float) -> int:
    """``DelaySeconds`` for a wait of ``remaining_s``: whole seconds (floored), at most SQS's 900.

    The retry handler waits out a sub-second remainder itself and re-enqueues when more is left.
    """
    return max(0, min(SQS_MAX_DELAY_S, math.floor(remaining_s)))


def busy_delay(deferrals: int, cap_s: float, first_s: float = 1.0) -> float:
    """How long a job that found its tenant busy waits before it looks again: doubling per deferral in a
    row, so that a busy tenant's backlog does not churn through the queue every second, up to ``cap_s``."""
    return float(min(cap_s, first_s * 2 ** max(0, deferrals)))


def hop_needed(not_before: float, now: float) -> bool:
    """A message that arrived a second or more early goes back to the queue for the rest of its wait."""
    return not_before - now >= 1.0


def early_by(not_before: float, now: float) -> float:
    """How long to wait before sending a message that arrived less than a second early."""
    return max(0.0, not_before - now)
