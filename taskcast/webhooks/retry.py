"""The webhook delivery function: SQS messages from the delivery queue, each a whole ``WebhookJob``
(first attempts handed off by the stream consumer, retries, jobs put back unattempted).

The jobs of one invocation run concurrently, one thread each. For each job, in order:

- not a job → the dead-letter queue (retrying it cannot help);
- arrived a second or more before ``not_before`` (SQS delays stop at 15 minutes) → back on the queue
  for the rest of the wait (a hop); less than a second early → wait out the remainder;
- a first attempt already in the delivery log (a replay) → dropped; a disabled callback → logged, ends;
- the endpoint's circuit breaker is open (``taskcast.webhooks.breaker``) → put back until it half-opens;
- not enough of the invocation left for a whole attempt (deadline + margin) → put back;
- the tenant already has ``cap`` attempts in flight, across all invocations (``DeliverySlots``) → wait up
  to a second for one of them to end (a healthy receiver's does), else put back, backing off (1 s, 2 s,
  4 s … up to one attempt's lease: by then every slot taken now has been given back or has expired)
  while the tenant stays busy. An attempt that ends in this process hands its slot straight to a job of
  the same tenant waiting here (``taskcast.webhooks.handoff``). A half-open endpoint whose probe another
  invocation holds backs off the same way: the probe's outcome is known within its lease;
- otherwise one attempt, bounded by its hard deadline; the outcome schedules the next attempt,
  dead-letters the job, or ends it, and feeds the breaker.

"Put back" re-enqueues the same attempt (its number unchanged) and reports the message as handled, so
a job that was never attempted never reaches the dead-letter queue through SQS's receive count. A
message fails (partial batch response, SQS delivers it again) only when AWS itself failed us.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from taskcast.metrics import WEBHOOK_BREAKER_OPENED, WEBHOOK_DEAD_LETTERED, WEBHOOK_PUT_BACK, MetricsSink
from taskcast.store import Breakers, DeliverySlots
from taskcast.webhooks.breaker import BreakerPolicy, BreakerState, after_failure, gate, is_endpoint_failure
from taskcast.webhooks.delivery import AttemptReport, WebhookDelivery
from taskcast.webhooks.format import BadJob, WebhookJob, busy_delay, early_by, hop_needed
from taskcast.webhooks.handoff import Handoffs

logger = logging.getLogger(__name__)

# Time kept free after the last attempt that may start: logging, enqueueing, the breaker write.
DEADLINE_MARGIN_S = 3.0
# A job whose tenant has no free slot (or whose endpoint another invocation is probing) looks again
# after 1 s, then 2, 4, … up to ``lease_s`` (``busy_delay``). A longer wait would only add latency: a
# stalled receiver's tenant is held back by its breaker, not by these put-backs.
# How long a job waits in the invocation for its tenant's slot before it goes back on the queue: long
# enough for a healthy receiver's attempt to end, short enough that a stalled tenant's jobs leave at once.
SLOT_WAIT_S = 1.0
_SLOT_RECHECK_S = 0.25  # slots freed by other invocations are not signalled: look again this often

# The jobs of this process waiting for their tenant's slot (one registry per process, like the slots'
# lease clock: every invocation an environment runs shares it).
_handoffs = Handoffs()


def _no_deadline() -> float:
    return float("inf")


@dataclass(frozen=True)
class DeliveryHandler:
    webhooks: WebhookDelivery
    breakers: Breakers
    slots: DeliverySlots
    policy: BreakerPolicy
    metrics: MetricsSink
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    @property
    def lease_s(self) -> float:
        return self.webhooks.sender.timeout_s + DEADLINE_MARGIN_S

    def handle(self, record: SQSRecord, time_left_s: Callable[[], float] = _no_deadline) -> str:
        try:
            job = WebhookJob.from_json(record.body)
        except BadJob as error:
            self.webhooks.queue.dead_letter(None, str(error), raw=record.body)
            self.metrics.count(WEBHOOK_DEAD_LETTERED)
            logger.error("webhook message is not a job", extra={"message_id": record.message_id})
            return "dead-lettered"
        now = self.clock()
        if hop_needed(job.not_before, now):
            self.webhooks.queue.enqueue(job, now=now)
            return "hop"
        settled = self.webhooks.settled(job)
        if settled is not None:
            return settled
        breaker = self.breakers.get(job.endpoint)
        door = gate(breaker, now)
        if door.state == "open":
            return self._put_back(job, door.wait_s, "breaker-open")
        if time_left_s() < self.lease_s:
            return self._put_back(job, 0.0, "no-time")
        if door.state == "half-open" and not self.breakers.claim_probe(job.endpoint, now, now + self.lease_s):
            return self._put_back(job, busy_delay(job.deferrals, cap_s=self.lease_s), "probe-busy", busy=True)
        slot = self._take_slot(job.tenant)
        if slot is None:
            return self._put_back(job, busy_delay(job.deferrals, cap_s=self.lease_s), "tenant-busy", busy=True)
        try:
            wait = early_by(job.not_before, self.clock())
            if wait > 0:
                self.sleep(wait)
            report = self.webhooks.attempt(job)
        finally:
            self._release(job.tenant, slot)
        self._feed_breaker(job, breaker, report)
        return report.outcome

    def _take_slot(self, tenant: str) -> int | None:
        """One of the tenant's slots: taken, or handed over by an attempt of this process that ended, or
        freed elsewhere and taken on a later look; None after ``SLOT_WAIT_S``."""
        slot = self.slots.take(tenant, self.clock(), self.lease_s)
        if slot is not None:
            return slot
        waiter = _handoffs.join(tenant)
        give_up = time.monotonic() + SLOT_WAIT_S
        try:
            while slot is None:
                left = give_up - time.monotonic()
                if left <= 0 or waiter.handed.wait(min(_SLOT_RECHECK_S, left)):
                    break
                slot = self.slots.take(tenant, self.clock(), self.lease_s)
        finally:
            handed = _handoffs.leave(waiter)
        if handed is not None and slot is not None:
            self._release(tenant, handed)  # handed over just as another slot was taken: one is enough
        return slot if slot is not None else handed

    def _release(self, tenant: str, slot: int) -> None:
        """Hand the slot to a job of the tenant waiting in this process, else give it back."""

        def renew() -> None:
            self.slots.renew(tenant, slot, self.clock(), self.lease_s)

        if not _handoffs.hand_over(tenant, slot, renew):
            self.slots.give_back(tenant, slot)

    def _put_back(self, job: WebhookJob, delay_s: float, reason: str, *, busy: bool = False) -> str:
        now = self.clock()
        self.webhooks.queue.enqueue(job.put_off(delay_s, now, busy=busy), now=now)
        self.metrics.count(WEBHOOK_PUT_BACK, Reason=reason)
        return reason

    def _feed_breaker(self, job: WebhookJob, seen: BreakerState, report: AttemptReport) -> None:
        if not report.sent:
            return
        now = self.clock()
        if is_endpoint_failure(report.result):
            opened = after_failure(self.breakers.count_failure(job.endpoint, now), now, self.policy)
            if opened is not None:
                self.breakers.save(job.endpoint, opened, now)
                self.metrics.count(WEBHOOK_BREAKER_OPENED)
                logger.warning(
                    "webhook endpoint breaker opened",
                    extra={
                        "tenant": job.tenant,
                        "endpoint": job.endpoint,
                        "cool_down_s": opened.open_until - now,
                        "openings": opened.openings,
                    },
                )
        elif not seen.healthy:
            self.breakers.save(job.endpoint, BreakerState(), now)
            logger.info("webhook endpoint breaker closed", extra={"tenant": job.tenant, "endpoint": job.endpoint})


def _time_left(context: Any) -> Callable[[], float]:
    remaining_ms: Callable[[], float] | None = getattr(context, "get_remaining_time_in_millis", None)
    if remaining_ms is None:
        return _no_deadline
    return lambda: remaining_ms() / 1000


def handle_deliveries(event: dict[str, Any], context: Any, handler: DeliveryHandler) -> dict[str, Any]:
    """Every record of the SQS batch at once; the partial batch response names the ones AWS failed."""
    records = [SQSRecord(raw) for raw in event.get("Records") or []]
    time_left = _time_left(context)
    failures: list[dict[str, str]] = []
    try:
        if records:
            with ThreadPoolExecutor(max_workers=len(records), thread_name_prefix="deliveries") as pool:
                futures = [(record, pool.submit(handler.handle, record, time_left)) for record in records]
                for record, future in futures:
                    error = future.exception()
                    if error is not None:
                        logger.error(
                            "webhook message failed",
                            extra={"message_id": record.message_id, "error": f"{type(error).__name__}: {error}"},
                        )
                        failures.append({"itemIdentifier": record.message_id})
    finally:
        handler.metrics.flush()
    return {"batchItemFailures": failures}
