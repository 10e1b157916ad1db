"""Fan-out: one task change to its WebSocket subscribers, from decision to ``@connections`` POST.

- Decisions, as plain functions over data: which stream records matter, who gets a version, and the
  frame on the wire.
- The poster: one shared ``apigatewaymanagementapi`` client per endpoint, a bounded thread pool for
  concurrent posts, and our own retry loop (the client's are turned off so the two do not multiply).
  ``GoneException`` (410): the connection is closed, its subscriptions are deleted; 429
  ``LimitExceededException``, 5xx and connection errors: retried with exponential backoff and full
  jitter, a bounded number of times, then ``PostFailed`` so the stream record fails and the stream
  delivers it again. Nothing is silently dropped.
- ``WebSocketFanout``, the I/O around the decisions. One change's posts share a time budget
  (``TASKCAST_FANOUT_CHANGE_BUDGET``): once it is spent no post or retry starts, the change fails and the
  stream delivers it again, so one task's audience (at most ``TASKCAST_SUBSCRIBERS_PER_TASK``) cannot hold
  the other tasks of its batch for longer than that. ``send`` posts one change to a given audience;
  ``fan_out`` wraps it for one change on its own (Query, ``FANOUT`` marker read, send, marker advanced).
  The stream consumer (``taskcast.push.batch``) does those reads once per task per batch instead and
  writes the markers once per round of versions. Either way the marker is advanced only after every
  subscriber got the version, so a replayed batch skips versions already fanned out. A version can
  still reach a connection twice when the fan-out of that version fails part-way (some posts
  delivered, one still throttled after its retries): the record fails, the stream delivers it again,
  and the connections that already had it get it again. Clients drop repeats by ``version``; a version
  never goes backwards for a connection.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from taskcast.aws import error_code
from taskcast.metrics import (
    GONE_CONNECTIONS,
    NO_METRICS,
    WEBSOCKET_POST_FAILURES,
    WEBSOCKET_POST_RETRIES,
    WEBSOCKET_POSTS,
    MetricsSink,
    default_metrics,
)
from taskcast.models import Task, status_message
from taskcast.store import (
    STATE,
    Markers,
    Subscription,
    SubscriptionStore,
    from_attributes,
    parse_item_key,
    task_from_plain,
)

# API Gateway refuses @connections messages over 128 KB.
MAX_FRAME_BYTES = 128 * 1024
# The fields a task.status message can always keep: everything else may be dropped to fit a frame.
_ESSENTIAL_FIELDS = ("type", "task_id", "status", "version", "progress", "at")


class PoisonRecord(ValueError):
    """A stream record for a task's state that cannot be read; retrying it will not help."""


@dataclass(frozen=True)
class StateChange:
    """A task's state after a change that raised its version, as read from one stream record."""

    task: Task
    sequence_number: str


def parse_stream_record(record: Mapping[str, Any]) -> StateChange | None:
    """The change a DynamoDB stream record carries, or None when there is nothing to push.

    Only INSERT and MODIFY records of ``sk = "STATE"`` whose version grew are changes; history rows,
    delivery log, markers and TTL deletions are skipped. Raises ``PoisonRecord`` for a STATE record
    whose image is not a task.
    """
    if record.get("eventName") not in {"INSERT", "MODIFY"}:
        return None
    body = record.get("dynamodb") or {}
    if parse_item_key(body.get("Keys") or {})[1] != STATE:
        return None
    try:
        new = from_attributes(body["NewImage"])
        task = task_from_plain(new)
        old_version = int(from_attributes(body["OldImage"])["version"]) if body.get("OldImage") else 0
    except (KeyError, TypeError, ValueError) as error:
        raise PoisonRecord(f"unreadable task state in stream record: {type(error).__name__}: {error}") from None
    if task.version <= old_version:
        return None
    return StateChange(task=task, sequence_number=str(body.get("SequenceNumber", "")))


@dataclass(frozen=True)
class FanoutPlan:
    """Who gets one version: ``send`` now, ``wait`` until their subscribe handshake ends, then decide again."""

    send: tuple[Subscription, ...] = ()
    wait: tuple[Subscription, ...] = ()
    skipped: tuple[Subscription, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.send and not self.wait


def plan_fanout(subscriptions: Iterable[Subscription], tenant: str, version: int, now: float) -> FanoutPlan:
    """Split a task's subscriptions for ``version``.

    - another tenant's subscription (cannot happen through the handlers, checked anyway): skipped;
    - a handshake still in progress: wait, so its snapshot goes out before any live change;
    - a handshake whose hold ended unconfirmed (it failed; the client subscribes again): skipped;
    - ``after_version >= version``: skipped, the handshake already sent that version or a newer one;
    - otherwise: send.
    """
    send: list[Subscription] = []
    wait: list[Subscription] = []
    skipped: list[Subscription] = []
    for subscription in subscriptions:
        if subscription.tenant != tenant:
            skipped.append(subscription)
        elif subscription.pending(now):
            wait.append(subscription)
        elif subscription.abandoned(now) or subscription.after_version >= version:
            skipped.append(subscription)
        else:
            send.append(subscription)
    return FanoutPlan(send=tuple(send), wait=tuple(wait), skipped=tuple(skipped))


def followed(audience: Iterable[Subscription], tenant: str) -> bool:
    """Whether anyone of the task's tenant follows it: a task nobody follows needs no FANOUT marker."""
    return any(subscription.tenant == tenant for subscription in audience)


def needs_sending(sent_version: int, version: int) -> bool:
    """False when the fan-out marker shows this version (or a later one) already went out."""
    return version > sent_version


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def frame(message: Mapping[str, Any], limit: int = MAX_FRAME_BYTES) -> bytes:
    """The bytes posted to a connection, always under API Gateway's frame limit.

    A message too large (a long ``error``) is replaced by a small one without the bulky fields,
    marked ``truncated`` and pointing to ``/tasks/{id}`` where the whole state can be read.
    """
    data = encode(message)
    if len(data) <= limit:
        return data
    small = {key: message[key] for key in _ESSENTIAL_FIELDS if key in message}
    small["truncated"] = True
    small["task_url"] = f"/tasks/{message.get('task_id', '')}"
    if "result_url" in message:
        small["result_url"] = message["result_url"]
    return encode(small)


def message_for(change: StateChange) -> dict[str, Any]:
    return status_message(change.task)


# --- posting frames through @connections -------------------------------------------------------

T = TypeVar("T")
R = TypeVar("R")

_RETRYABLE_CODES = frozenset(
    {"LimitExceededException", "TooManyRequestsException", "ThrottlingException", "InternalServerError"}
)
_lock = threading.Lock()


class PostOutcome(StrEnum):
    DELIVERED = "delivered"
    GONE = "gone"


class PostFailed(Exception):
    """A frame could not be posted after every retry (or the error is not one to retry)."""

    def __init__(self, connection_id: str, reason: str) -> None:
        super().__init__(f"posting to connection {connection_id} failed: {reason}")
        self.connection_id = connection_id
        self.reason = reason


def backoff_delays(
    attempts: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random
) -> list[float]:
    """The waits between ``attempts`` tries: exponential growth capped at ``cap_s``, with full jitter."""
    return [rand() * min(cap_s, base_s * 2**retry) for retry in range(max(0, attempts - 1))]


def _http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_gone(error: Exception) -> bool:
    return isinstance(error, ClientError) and (error_code(error) == "GoneException" or _http_status(error) == 410)


def is_retryable(error: Exception) -> bool:
    if isinstance(error, ConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        status = _http_status(error)
        return error_code(error) in _RETRYABLE_CODES or status == 429 or status >= 500
    return False


@cache
def management_client(endpoint_url: str, pool_size: int = 32) -> Any:
    """The shared ``apigatewaymanagementapi`` client for ``endpoint_url`` (the stage URL on AWS)."""
    with _lock:
        return boto3.session.Session().client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint_url,
            config=Config(
                # One attempt per call: ConnectionPoster owns retries, with jitter and a bound.
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=pool_size,
                connect_timeout=5,
                read_timeout=10,
            ),
        )


@dataclass(eq=False)
class ConnectionPoster:
    client: Any
    _: KW_ONLY
    workers: int = 16
    attempts: int = 6
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic
    _pool: ThreadPoolExecutor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, self.workers), thread_name_prefix="fanout")

    def post(
        self, connection_id: str, data: bytes, metrics: MetricsSink = NO_METRICS, budget_s: float = math.inf
    ) -> PostOutcome:
        """Post one frame, retrying transient failures; raises ``PostFailed`` when it gives up.

        ``metrics`` counts the retries; the caller's own, as the poster is shared by several functions.
        ``budget_s``: no retry starts once that much time has passed.
        """
        give_up_at = self.clock() + budget_s
        delays = backoff_delays(self.attempts, self.base_delay_s, self.max_delay_s, self.rand)
        last_reason = ""
        for attempt in range(self.attempts):
            try:
                self.client.post_to_connection(ConnectionId=connection_id, Data=data)
                return PostOutcome.DELIVERED
            except Exception as error:  # noqa: BLE001 - classified below, re-raised as PostFailed
                if is_gone(error):
                    return PostOutcome.GONE
                if not is_retryable(error):
                    raise PostFailed(connection_id, _describe(error)) from error
                last_reason = _describe(error)
            if attempt < len(delays):
                if self.clock() + delays[attempt] >= give_up_at:
                    raise PostFailed(connection_id, f"out of time for retries ({last_reason})")
                metrics.count(WEBSOCKET_POST_RETRIES)
                self.sleep(delays[attempt])
        raise PostFailed(connection_id, f"still failing after {self.attempts} attempts ({last_reason})")

    def map_settled(self, function: Callable[[T], R], items: Iterable[T]) -> list[tuple[T, R | BaseException]]:
        """Run ``function`` over ``items`` in the pool; each item paired with its result or its exception."""
        futures = [(item, self._pool.submit(function, item)) for item in items]
        settled: list[tuple[T, R | BaseException]] = []
        for item, future in futures:
            error = future.exception()
            settled.append((item, error if error is not None else future.result()))
        return settled

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error_code(error) or 'error'} (HTTP {_http_status(error)})"
    return type(error).__name__


# --- the fan-out of one change ----------------------------------------------------------------------

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
    gone_connections: frozenset[str] = frozenset()  # closed connections found (their subscriptions are deleted)


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
        change_budget_s: float = 20.0,
    ) -> None:
        self.subscriptions = subscriptions
        self.change_budget_s = change_budget_s
        self.poster = poster
        self.markers = markers
        self.metrics = metrics if metrics is not None else default_metrics()
        self._clock = clock
        self._sleep = sleep

    def fan_out(self, change: StateChange, fanned_out: MutableMapping[str, int] | None = None) -> FanoutReport:
        """One change on its own: read its subscribers and its FANOUT marker, send, advance the marker.

        ``fanned_out`` caches the FANOUT marker per task. The stream consumer does the reads once per task
        per batch instead (``taskcast.push.batch``), calls ``send`` and writes the markers once per round.
        """
        task = change.task
        cache = {} if fanned_out is None else fanned_out
        audience = self.subscriptions.for_task(task.id)
        if not followed(audience, task.tenant):
            return self.send(change, audience)
        if task.id not in cache:
            cache[task.id] = self.markers.fanned_out_version(task.id)
        if not needs_sending(cache[task.id], task.version):
            return FanoutReport(task.id, task.version, replayed=True)
        report = self.send(change, audience)
        self.markers.advance_fanout(task.id, task.version, task.expires_at)
        cache[task.id] = task.version
        return report

    def send(self, change: StateChange, audience: Sequence[Subscription]) -> FanoutReport:
        """Send ``change`` to those of ``audience`` (the task's subscriptions) that should get it; raise
        ``FanoutFailed`` if any could not be reached. Neither reads nor writes the FANOUT marker."""
        task = change.task
        plan = plan_fanout(audience, task.tenant, task.version, self._clock())
        if plan.empty:
            return FanoutReport(task.id, task.version, skipped=len(plan.skipped))
        data = frame(message_for(change))
        # One change holds its shard at most this long (plus the posts under way): see fanout_worst_case_s.
        deadline = self._clock() + self.change_budget_s
        targets = [*plan.send, *plan.wait]
        settled = self._settle(lambda subscription: self._deliver(subscription, task.version, data, deadline), targets)
        failures = [(sub, outcome) for sub, outcome in settled if isinstance(outcome, BaseException)]
        counts = {kind: sum(1 for _, outcome in settled if outcome == kind) for kind in Delivery}
        # Counted before a failure is raised: the posts that did go out went out.
        self.metrics.count(WEBSOCKET_POSTS, counts[Delivery.SENT])
        self.metrics.count(GONE_CONNECTIONS, counts[Delivery.GONE])
        self.metrics.count(WEBSOCKET_POST_FAILURES, len(failures))
        if failures:
            reasons = "; ".join(str(error) for _, error in failures[:3])
            raise FanoutFailed(f"{len(failures)} of {len(settled)} subscribers of {task.id} v{task.version}: {reasons}")
        return FanoutReport(
            task.id,
            task.version,
            sent=counts[Delivery.SENT],
            gone=counts[Delivery.GONE],
            skipped=counts[Delivery.SKIPPED] + len(plan.skipped),
            gone_connections=frozenset(sub.connection_id for sub, outcome in settled if outcome == Delivery.GONE),
        )

    def _settle(
        self, deliver: Callable[[Subscription], Delivery], targets: Sequence[Subscription]
    ) -> list[tuple[Subscription, Delivery | BaseException]]:
        """Each target with its outcome. A single target is posted from the calling thread: the common
        case of one subscriber needs no hop through the poster's pool (whose workers the consumer's
        concurrent tasks would otherwise queue for)."""
        if len(targets) != 1:
            return self.poster.map_settled(deliver, targets)
        try:
            return [(targets[0], deliver(targets[0]))]
        except Exception as error:  # noqa: BLE001 - reported like map_settled reports it
            return [(targets[0], error)]

    def _deliver(self, subscription: Subscription, version: int, data: bytes, deadline: float) -> Delivery:
        if subscription.pending(self._clock()):
            current = self._await_handshake(subscription)
            if current is None or current.abandoned(self._clock()) or current.after_version >= version:
                return Delivery.SKIPPED
        left = deadline - self._clock()
        if left <= 0:
            # Failed, not dropped: the stream delivers the record again and this connection gets it then.
            reason = f"the change's fan-out budget of {self.change_budget_s:g} s ran out"
            raise PostFailed(subscription.connection_id, reason)
        outcome = self.poster.post(subscription.connection_id, data, self.metrics, budget_s=left)
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

