"""One attempt of a registered endpoint's delivery (a ``WebhookJob`` with ``endpoint_id``).

Everything that may have changed since the job was handed off is read at attempt time: whether the
endpoint still exists and is enabled, its URL (checked again by the URL guard inside the sender) and its
signing secrets (during a rotation, the old and the new one both sign). The outcome follows the same
policy as a task's callback (``taskcast.webhooks.format.decide``: retry schedule, dead-letter queue), and
also moves the endpoint's failing clock: a success stops it; a failure starts it, and once every delivery
has failed for ``disable_after_s`` the endpoint is switched off, as it is at once on a 410.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from taskcast.endpoint_store import EndpointDeliveryLog, EndpointSecrets, EndpointStore
from taskcast.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_DEAD_LETTERED, MetricsSink
from taskcast.webhooks.endpoints import (
    DISABLED_GONE,
    Endpoint,
    failing_reason,
    should_disable,
    signing_secrets,
)
from taskcast.webhooks.format import AttemptResult, Decision, WebhookJob, decide, signed_headers
from taskcast.webhooks.retry_queue import RetryQueue

logger = logging.getLogger(__name__)


class Sender(Protocol):
    """``taskcast.webhooks.delivery.WebhookSender`` as seen from here."""

    def send(self, url: str, payload: str, headers: dict[str, str]) -> AttemptResult: ...


@dataclass(frozen=True)
class EndpointReport:
    decision: Decision
    result: AttemptResult
    sent: bool

    @property
    def outcome(self) -> str:
        return self.decision.outcome


@dataclass
class EndpointAttempts:
    endpoints: EndpointStore
    secrets: EndpointSecrets
    log: EndpointDeliveryLog
    queue: RetryQueue
    schedule: Sequence[float]
    disable_after_s: float
    metrics: MetricsSink
    clock: Callable[[], float] = time.time

    def settled(self, job: WebhookJob) -> str | None:
        """Why the job needs no attempt ("duplicate", "gone", "disabled"), or None."""
        if job.from_stream and self.log.first_sent(job.endpoint_id, job.task_id, job.version):
            return "duplicate"
        endpoint = self.endpoints.get(job.tenant, job.endpoint_id)
        if endpoint is None:
            return "gone"  # deleted: nothing to log it under any more
        if not endpoint.enabled:
            self._record(job, AttemptResult(error=f"endpoint disabled: {endpoint.disabled_reason}"),
                         Decision("disabled"), None)
            return "disabled"
        return None

    def attempt(self, job: WebhookJob, sender: Sender) -> EndpointReport:
        endpoint = self.endpoints.get(job.tenant, job.endpoint_id)
        if endpoint is None:
            return EndpointReport(Decision("failed"), AttemptResult(error="endpoint deleted"), sent=False)
        if not endpoint.enabled:
            result = AttemptResult(error=f"endpoint disabled: {endpoint.disabled_reason}")
            self._record(job, result, Decision("disabled"), None)
            return EndpointReport(Decision("disabled"), result, sent=False)
        keys = signing_secrets(self.secrets.get(endpoint.id), self.clock())
        if not keys:
            result = AttemptResult(error="the endpoint has no signing secret")
            self.queue.dead_letter(job, "no signing secret")
            self._record(job, result, Decision("failed"), None)
            return EndpointReport(Decision("failed"), result, sent=False)
        started = time.monotonic()
        result = sender.send(endpoint.url, job.payload, signed_headers(keys, job.webhook_id, job.payload))
        duration_ms = round((time.monotonic() - started) * 1000)
        decision = decide(result, job.attempt, self.schedule)
        if decision.outcome == "retrying":
            self.queue.enqueue(job.next_attempt(decision.delay_s or 0.0, self.clock()), now=self.clock())
        elif decision.outcome == "failed":
            self.queue.dead_letter(job, result.error or f"HTTP {result.status_code}")
            self.metrics.count(WEBHOOK_DEAD_LETTERED)
        self._move_clock(endpoint, decision, result)
        self._record(job, result, decision, duration_ms)
        logger.info(
            "endpoint webhook attempt",
            extra={"webhook_id": job.webhook_id, "attempt": job.attempt, "status_code": result.status_code,
                   "outcome": decision.outcome, "duration_ms": duration_ms},
        )
        return EndpointReport(decision, result, sent=True)

    def _move_clock(self, endpoint: Endpoint, decision: Decision, result: AttemptResult) -> None:
        if decision.outcome == "delivered":
            if endpoint.failing_since is not None:
                self.endpoints.succeeded(endpoint.tenant, endpoint.id)
            return
        if result.status_code == 410:
            self._disable(endpoint, DISABLED_GONE)
            return
        now = self.clock()
        current = self.endpoints.failed(endpoint.tenant, endpoint.id, now)
        if current is not None and should_disable(current.failing_since, now, self.disable_after_s):
            self._disable(endpoint, failing_reason(self.disable_after_s))

    def _disable(self, endpoint: Endpoint, reason: str) -> None:
        if self.endpoints.disable(endpoint.tenant, endpoint.id, reason):
            logger.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint.id, "reason": reason})

    def _record(self, job: WebhookJob, result: AttemptResult, decision: Decision, duration_ms: int | None) -> None:
        self.log.record_attempt(
            job,
            outcome=decision.outcome,
            status_code=result.status_code,
            error=result.error,
            duration_ms=duration_ms,
            now=self.clock(),
        )
        self.metrics.count(WEBHOOK_ATTEMPTS, Outcome=decision.outcome)
