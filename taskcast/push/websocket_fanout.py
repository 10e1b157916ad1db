"""Fanning one task change out to its WebSocket subscribers (the I/O around ``taskcast.push.fanout``).

Duplicates: the ``FANOUT`` marker is advanced only after every subscriber got the version, so a
replayed batch skips versions already fanned out. A version can still reach a connection twice when
the fan-out of that version fails part-way (some posts delivered, one still throttled after its
retries): the record fails, the stream delivers it again, and the connections that already had it get
it again. Clients drop repeats by ``version``; a version never goes backwards for a connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from enum import StrEnum

from taskcast.markers import Markers
from taskcast.metrics import (
    GONE_CONNECTIONS,
    WEBSOCKET_POST_FAILURES,
    WEBSOCKET_POSTS,
    MetricsSink,
    default_metrics,
)
from taskcast.push.connections import ConnectionPoster, PostOutcome
from taskcast.push.fanout import StateChange, frame, message_for, needs_sending, plan_fanout
from taskcast.subscriptions import Subscription, SubscriptionStore

logger = logging.getLogger(__name__)


class Delivery(StrEnum):
    SENT = "sent"
    GONE = "gone"
    SKIPPED = "skipped"


class FanoutFailed(Exception):
    """Some subscribers could not be reached; the stream record must be delivered again."""


@dataclass(frozen=True)
class FanoutReport:
    task_id: str
    version: int
    sent: int = 0
    gone: int = 0
    skipped: int = 0
    replayed: bool = False


class WebSocketFanout:
    def __init__(
        self,
        subscriptions: SubscriptionStore,
        poster: ConnectionPoster,
        markers: Markers,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.subscriptions = subscriptions
        self.poster = poster
        self.markers = markers
        self.metrics = metrics if metrics is not None else default_metrics()
        self._clock = clock
        self._sleep = sleep

    def fan_out(self, change: StateChange, fanned_out: MutableMapping[str, int] | None = None) -> FanoutReport:
        """Send ``change`` to every subscriber that should get it; raise ``FanoutFailed`` if any could not.

        ``fanned_out`` caches the FANOUT marker per task for the length of one batch.
        """
        task = change.task
        cache = {} if fanned_out is None else fanned_out
        plan = plan_fanout(self.subscriptions.for_task(task.id), task.tenant, task.version, self._clock())
        if plan.empty:
            return FanoutReport(task.id, task.version, skipped=len(plan.skipped))
        if task.id not in cache:
            cache[task.id] = self.markers.fanned_out_version(task.id)
        if not needs_sending(cache[task.id], task.version):
            return FanoutReport(task.id, task.version, replayed=True)

        data = frame(message_for(change))
        settled = self.poster.map_settled(
            lambda subscription: self._deliver(subscription, task.version, data), [*plan.send, *plan.wait]
        )
        failures = [(sub, outcome) for sub, outcome in settled if isinstance(outcome, BaseException)]
        counts = {kind: sum(1 for _, outcome in settled if outcome == kind) for kind in Delivery}
        # Counted before a failure is raised: the posts that did go out went out.
        self.metrics.count(WEBSOCKET_POSTS, counts[Delivery.SENT])
        self.metrics.count(GONE_CONNECTIONS, counts[Delivery.GONE])
        self.metrics.count(WEBSOCKET_POST_FAILURES, len(failures))
        if failures:
            reasons = "; ".join(str(error) for _, error in failures[:3])
            raise FanoutFailed(f"{len(failures)} of {len(settled)} subscribers of {task.id} v{task.version}: {reasons}")
        self.markers.advance_fanout(task.id, task.version, task.expires_at)
        cache[task.id] = task.version
        return FanoutReport(
            task.id,
            task.version,
            sent=counts[Delivery.SENT],
            gone=counts[Delivery.GONE],
            skipped=counts[Delivery.SKIPPED] + len(plan.skipped),
        )

    def _deliver(self, subscription: Subscription, version: int, data: bytes) -> Delivery:
        if subscription.pending(self._clock()):
            current = self._await_handshake(subscription)
            if current is None or current.after_version >= version:
                return Delivery.SKIPPED
        outcome = self.poster.post(subscription.connection_id, data, self.metrics)
        if outcome is PostOutcome.GONE:
            self.forget_connection(subscription.connection_id, subscription.task_id)
            return Delivery.GONE
        return Delivery.SENT

    def forget_connection(self, connection_id: str, task_id: str | None = None) -> None:
        """A closed connection: delete its subscriptions (this task's directly, the rest via the GSI)."""
        if task_id is not None:
            self.subscriptions.remove(task_id, connection_id)
        removed = self.subscriptions.remove_connection(connection_id)
        logger.info("connection gone", extra={"connection_id": connection_id, "subscriptions_removed": removed})

    def _await_handshake(self, subscription: Subscription) -> Subscription | None:
        """Wait until the subscribe handshake confirms (or its hold expires); None if the subscription is gone."""
        step = 0.02
        current: Subscription | None = subscription
        while current is not None and current.pending(self._clock()):
            self._sleep(step)
            step = min(step * 2, 0.25)
            current = self.subscriptions.get(subscription.task_id, subscription.connection_id)
        return current

