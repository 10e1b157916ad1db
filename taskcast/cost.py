"""Monthly AWS cost of telling clients that a task changed: polling, long-polling, WebSocket push, webhooks.

A pure model: a ``Scenario`` (load and client behaviour) goes in, one ``Estimate`` per transport comes out,
each a ``Usage`` (billable units per task) priced with the named constants below. Everything that is the
same whatever the transport (creating the task, running the worker, writing its changes) is the ``base``
estimate, reported apart so that the transports can be compared on what differs.

Prices: region us-east-1, first pricing tier, no free tier, no savings plans, no data transfer. Taken on
2026-11-22 from the AWS pricing pages named beside each one; check them again before relying on a total.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields

from taskcast.limits import rereads_of_hold

REGION = "us-east-1"
PRICES_TAKEN = "2026-11-22"

API_GATEWAY_PRICING = "https://aws.amazon.com/api-gateway/pricing/"
LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/"
DYNAMODB_PRICING = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
SQS_PRICING = "https://aws.amazon.com/sqs/pricing/"

MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


# API Gateway REST API: per request, first 333 million a month.
REST_API_REQUEST = Price(3.50 / MILLION, "REST API request", API_GATEWAY_PRICING)
# API Gateway WebSocket: messages sent and received, metered in 32 KB units, first billion a month.
WEBSOCKET_MESSAGE = Price(1.00 / MILLION, "WebSocket message (32 KB unit)", API_GATEWAY_PRICING)
WEBSOCKET_CONNECTION_MINUTE = Price(0.25 / MILLION, "WebSocket connection-minute", API_GATEWAY_PRICING)
WEBSOCKET_METERING_BYTES = 32 * 1024
# Lambda: requests, and duration on arm64 (the template's architecture), first 7.5 billion GB-s a month.
LAMBDA_REQUEST = Price(0.20 / MILLION, "Lambda request", LAMBDA_PRICING)
LAMBDA_GB_SECOND_ARM64 = Price(0.0000133334, "Lambda GB-second (arm64)", LAMBDA_PRICING)
# DynamoDB on-demand: a write unit writes 1 KB; a read unit reads 4 KB strongly consistent (two eventually).
# Transactions cost twice. Stream reads made by a Lambda trigger are free; other consumers pay per GetRecords.
DYNAMODB_WRITE_UNIT = Price(0.625 / MILLION, "DynamoDB write request unit", DYNAMODB_PRICING)
DYNAMODB_READ_UNIT = Price(0.125 / MILLION, "DynamoDB read request unit", DYNAMODB_PRICING)
DYNAMODB_STREAM_READ = Price(0.02 / 100_000, "DynamoDB Streams read request", DYNAMODB_PRICING)
# SQS standard queue: per request (64 KB chunk), after the first million a month.
SQS_REQUEST = Price(0.40 / MILLION, "SQS request", SQS_PRICING)

PRICES: tuple[Price, ...] = (
    REST_API_REQUEST,
    WEBSOCKET_MESSAGE,
    WEBSOCKET_CONNECTION_MINUTE,
    LAMBDA_REQUEST,
    LAMBDA_GB_SECOND_ARM64,
    DYNAMODB_WRITE_UNIT,
    DYNAMODB_READ_UNIT,
    DYNAMODB_STREAM_READ,
    SQS_REQUEST,
)

# A REST authorizer result is cached per API key for this long (template: ReauthorizeEvery: 60).
AUTHORIZER_CACHE_S = 60
# API Gateway closes a WebSocket idle for 10 minutes; clients ping well inside that.
WEBSOCKET_PING_EVERY_S = 300
# Bytes one subscription row takes in a Query result (task id, connection id, tenant, expiry).
SUBSCRIPTION_ROW_BYTES = 150


@dataclass(frozen=True)
class Usage:
    """Billable units (plus client requests, for information); add and scale like vectors."""

    rest_requests: float = 0.0
    websocket_messages: float = 0.0  # in 32 KB metering units
    websocket_connection_minutes: float = 0.0
    lambda_requests: float = 0.0
    lambda_gb_seconds: float = 0.0
    dynamodb_read_units: float = 0.0
    dynamodb_write_units: float = 0.0
    stream_read_requests: float = 0.0  # billed ones only (a Lambda trigger's reads are free)
    sqs_requests: float = 0.0
    client_requests: float = 0.0  # HTTP requests and WebSocket frames clients send (not billed by itself)

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def times(self, factor: float) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) * factor for f in fields(self)})


def total_usage(parts: Iterable[Usage]) -> Usage:
    result = Usage()
    for part in parts:
        result = result + part
    return result


@dataclass(frozen=True)
class Cost:
    """Monthly US dollars by service."""

    api_gateway: float
    lambda_: float
    dynamodb: float
    sqs: float

    @property
    def total(self) -> float:
        return self.api_gateway + self.lambda_ + self.dynamodb + self.sqs


def price(usage: Usage) -> Cost:
    return Cost(
        api_gateway=usage.rest_requests * REST_API_REQUEST.usd
        + usage.websocket_messages * WEBSOCKET_MESSAGE.usd
        + usage.websocket_connection_minutes * WEBSOCKET_CONNECTION_MINUTE.usd,
        lambda_=usage.lambda_requests * LAMBDA_REQUEST.usd + usage.lambda_gb_seconds * LAMBDA_GB_SECOND_ARM64.usd,
        dynamodb=usage.dynamodb_read_units * DYNAMODB_READ_UNIT.usd
        + usage.dynamodb_write_units * DYNAMODB_WRITE_UNIT.usd
        + usage.stream_read_requests * DYNAMODB_STREAM_READ.usd,
        sqs=usage.sqs_requests * SQS_REQUEST.usd,
    )


@dataclass(frozen=True)
class Scenario:
    """The load and how clients behave. Handler times are assumptions (billed at 1 ms granularity)."""

    tasks_per_month: float = 1_000_000
    duration_s: float = 40.0
    poll_interval_s: float = 2.0
    backoff_initial_s: float = 1.0
    backoff_factor: float = 1.5
    backoff_cap_s: float = 28.0
    long_poll_wait_s: float = 25.0
    # When a held long-poll re-reads the task: after TASKCAST_LONG_POLL_INTERVAL, doubling up to
    # TASKCAST_LONG_POLL_MAX_INTERVAL (the REST handler's settings).
    long_poll_check_s: float = 0.1
    long_poll_max_check_s: float = 1.0
    subscribers_per_task: int = 1
    # Share of tasks that are followed by a webhook instead of WebSocket subscribers (the mixed row).
    webhook_share: float = 0.0
    # Progress reports between RUNNING and the end (the ``sleep`` job's ``steps``); None: min(duration, 10).
    progress_steps: int | None = None
    message_bytes: int = 400
    webhook_failure_share: float = 0.0  # deliveries that need one retry through the queue
    idempotency_key: bool = True
    # Lambda memory (template.yaml) and time per invocation.
    handler_memory_mb: int = 512
    worker_memory_mb: int = 1024
    rest_handler_ms: float = 20.0
    websocket_handler_ms: float = 15.0
    authorizer_ms: float = 5.0
    stream_consumer_ms: float = 30.0
    connection_post_ms: float = 15.0  # one @connections POST, in-region
    fanout_workers: int = 16  # posts the consumer makes at once (TASKCAST_FANOUT_WORKERS)
    webhook_response_ms: float = 150.0  # the receiver's answer time, billed while the consumer waits
    worker_overhead_ms: float = 100.0

    def __post_init__(self) -> None:
        positive = {
            "tasks_per_month": self.tasks_per_month,
            "poll_interval_s": self.poll_interval_s,
            "backoff_initial_s": self.backoff_initial_s,
            "long_poll_wait_s": self.long_poll_wait_s,
            "long_poll_check_s": self.long_poll_check_s,
            "message_bytes": self.message_bytes,
            "fanout_workers": self.fanout_workers,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0")
        if self.duration_s < 0:
            raise ValueError("duration_s must be >= 0")
        if self.backoff_factor < 1 or self.backoff_cap_s < self.backoff_initial_s:
            raise ValueError("backoff must not shrink: factor >= 1 and cap >= initial")
        if self.subscribers_per_task < 1:
            raise ValueError("subscribers_per_task must be >= 1")
        for name in ("webhook_share", "webhook_failure_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.progress_steps is not None and self.progress_steps < 1:
            raise ValueError("progress_steps must be >= 1")

    @property
    def steps(self) -> int:
        if self.progress_steps is not None:
            return self.progress_steps
        return max(1, min(int(self.duration_s), 10))

    @property
    def state_writes(self) -> int:
        """Changes of the task's state: PENDING, RUNNING, steps - 1 progress reports, the terminal status."""
        return self.steps + 2

    def change_times(self) -> list[float]:
        """Seconds after creation at which each change after PENDING is written (RUNNING at once)."""
        progress = [self.duration_s * i / self.steps for i in range(1, self.steps)]
        return [0.0, *progress, self.duration_s]


# ---------------------------------------------------------------- client schedules


def fixed_delays(interval_s: float) -> Iterator[float]:
    while True:
        yield interval_s


def backoff_delays(initial_s: float, factor: float, cap_s: float) -> Iterator[float]:
    delay = initial_s
    while True:
        yield delay
        delay = min(delay * factor, cap_s)


def poll_times(duration_s: float, delays: Iterable[float]) -> list[float]:
    """When a poller asks, until the first answer at or after ``duration_s`` (the one that sees the end)."""
    times: list[float] = []
    elapsed = 0.0
    for delay in delays:
        if delay <= 0:
            raise ValueError("poll delays must be > 0")
        elapsed += delay
        times.append(elapsed)
        if elapsed >= duration_s:
            return times
    raise ValueError("the delays ended before the task did")


def long_poll_holds(change_times: list[float], wait_s: float) -> list[float]:
    """How long each ``?wait=`` request is held: it returns at the next change or after ``wait_s``.

    The client asks again at once, and the last change (the terminal status) ends the loop.
    """
    holds: list[float] = []
    now = 0.0
    pending = sorted(change_times)
    index = 0
    while index < len(pending):
        end = min(pending[index], now + wait_s)
        if end >= pending[index]:
            index += 1
        holds.append(max(0.0, end - now))
        now = max(now, end)
    return holds


# ---------------------------------------------------------------- usage building blocks


def invocation(memory_mb: float, ms: float, count: float = 1.0) -> Usage:
    return Usage(lambda_requests=count, lambda_gb_seconds=count * (memory_mb / 1024) * (ms / 1000))


def message_units(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / WEBSOCKET_METERING_BYTES))


def rest_call(s: Scenario, extra_ms: float = 0.0, strong_reads: float = 1.0) -> Usage:
    """One REST request through the gateway to the REST function, reading the task."""
    return (
        Usage(rest_requests=1, dynamodb_read_units=strong_reads, client_requests=1)
        + invocation(s.handler_memory_mb, s.rest_handler_ms + extra_ms)
    )


def rest_authorizations(s: Scenario, session_s: float) -> Usage:
    """Authorizer runs for one client session: once per cache period."""
    return invocation(s.handler_memory_mb, s.authorizer_ms, max(1, math.ceil(session_s / AUTHORIZER_CACHE_S)))


def result_fetch(s: Scenario) -> Usage:
    """``GET /tasks/{id}/result`` once the client knows the task ended: the same for every transport."""
    return rest_call(s)


def base_usage(s: Scenario) -> Usage:
    """Per task, whatever the transport: create, run, and write every change (with its history row)."""
    transaction_write = 2 * 2  # two items of at most 1 KB, in a transaction
    create = rest_call(s, strong_reads=0) + Usage(dynamodb_write_units=transaction_write)
    if s.idempotency_key:
        create = create + Usage(dynamodb_write_units=2)  # the idempotency record, put then completed
    worker = invocation(s.worker_memory_mb, s.duration_s * 1000 + s.worker_overhead_ms)
    changes = s.state_writes - 1
    # Each change reads the task (strongly consistent) and writes state + history in one transaction.
    writes = Usage(dynamodb_read_units=changes, dynamodb_write_units=changes * transaction_write)
    return create + worker + writes


def polling_usage(s: Scenario, times: list[float]) -> Usage:
    """Per task: every subscriber polls on its own; each poll is a request, an invocation and a read."""
    per_client = rest_call(s).times(len(times)) + rest_authorizations(s, times[-1]) + result_fetch(s)
    return per_client.times(s.subscribers_per_task)


def long_poll_usage(s: Scenario) -> Usage:
    holds = long_poll_holds(s.change_times(), s.long_poll_wait_s)
    per_client = Usage()
    for hold in holds:
        if hold <= 0:
            per_client = per_client + rest_call(s)
            continue
        rereads = rereads_of_hold(hold, s.long_poll_check_s, max(s.long_poll_check_s, s.long_poll_max_check_s))
        # The hold's lease (taskcast.long_polls): written, counted (one read unit) and deleted.
        lease = Usage(dynamodb_write_units=2, dynamodb_read_units=1)
        per_client = per_client + rest_call(s, extra_ms=hold * 1000, strong_reads=1 + rereads) + lease
    per_client = per_client + rest_authorizations(s, sum(holds)) + result_fetch(s)
    return per_client.times(s.subscribers_per_task)


def stream_consumer_usage(s: Scenario, posts_per_change: int, post_ms: float) -> Usage:
    """The stream consumer runs once per state change (one record per batch at low traffic).

    It queries the task's subscriptions (eventually consistent) and posts to each; reading the stream
    itself is free for a Lambda trigger.
    """
    batches = math.ceil(posts_per_change / s.fanout_workers) if posts_per_change else 0
    query_units = 0.5 * max(1, math.ceil(posts_per_change * SUBSCRIPTION_ROW_BYTES / 4096))
    per_change = invocation(s.handler_memory_mb, s.stream_consumer_ms + batches * post_ms) + Usage(
        dynamodb_read_units=query_units
    )
    return per_change.times(s.state_writes)


def websocket_usage(s: Scenario) -> Usage:
    """Per task with K WebSocket subscribers: connect, subscribe, receive every change, disconnect."""
    units = message_units(s.message_bytes)
    pings = math.floor(s.duration_s / WEBSOCKET_PING_EVERY_S)
    handler = invocation(s.handler_memory_mb, s.websocket_handler_ms)
    # A single-use ticket first (POST /ws-tickets: one REST call that writes the ticket), then $connect: the
    # authorizer redeems the ticket (one conditional delete) and the WebSocket function runs.
    ticket = rest_call(s, strong_reads=0) + Usage(dynamodb_write_units=1)
    connect = (
        ticket
        + invocation(s.handler_memory_mb, s.authorizer_ms)
        + Usage(dynamodb_write_units=1)
        + handler
        + Usage(client_requests=1)
    )
    # subscribe: a frame in, the task read (tenant check, snapshot), the subscription row begun and
    # confirmed, the current state back.
    subscribe = handler + Usage(
        websocket_messages=1 + units, dynamodb_read_units=2, dynamodb_write_units=2, client_requests=1
    )
    keepalive = (handler + Usage(websocket_messages=2, client_requests=1)).times(pings)
    live = Usage(websocket_messages=units * (s.state_writes - 1))  # RUNNING … terminal, after subscribing
    # $disconnect finds the connection's rows on the index (eventually consistent) and deletes them.
    disconnect = handler + Usage(dynamodb_read_units=0.5, dynamodb_write_units=1)
    minutes = Usage(websocket_connection_minutes=max(1, math.ceil((s.duration_s + 1) / 60)))
    per_client = connect + subscribe + keepalive + live + disconnect + minutes + result_fetch(s)
    fanout = stream_consumer_usage(s, s.subscribers_per_task, s.connection_post_ms)
    # Per change after PENDING (nobody has subscribed before the task exists): the FANOUT marker read,
    # then advanced once the version went out.
    markers = Usage(dynamodb_read_units=1, dynamodb_write_units=1).times(s.state_writes - 1)
    return per_client.times(s.subscribers_per_task) + fanout + markers


def webhook_usage(s: Scenario) -> Usage:
    """Per task with one callback: one signed POST per change, each logged; failures retried via SQS.

    Every attempt is one queue hop from the stream (sent, received and deleted: 3 SQS requests, counted
    unbatched as an upper bound) and runs in the delivery function under a tenant slot (a read, a take and
    a give-back) after the endpoint's breaker is read.
    """
    posts = s.state_writes
    consumer = stream_consumer_usage(s, 1, s.webhook_response_ms)
    # Per change: the callback's state read (disabled? already logged?), then the attempt logged.
    log = Usage(dynamodb_read_units=posts, dynamodb_write_units=posts)
    hand_off = Usage(sqs_requests=3, dynamodb_read_units=2, dynamodb_write_units=2).times(posts)
    log = log + hand_off
    retries = posts * s.webhook_failure_share
    # A retry is sent, received and deleted (3 SQS requests), runs the retry function and logs again.
    retry = (
        Usage(sqs_requests=3, dynamodb_write_units=1)
        + invocation(s.handler_memory_mb, s.stream_consumer_ms + s.webhook_response_ms)
    ).times(retries)
    return consumer + log + retry + result_fetch(s)


# ---------------------------------------------------------------- estimates


@dataclass(frozen=True)
class Estimate:
    transport: str
    label: str
    per_task: Usage  # notification usage of one task (all its subscribers)
    cost: Cost  # monthly, notification only
    base: Cost = field(default_factory=lambda: Cost(0, 0, 0, 0))  # monthly, common to all transports

    @property
    def total(self) -> float:
        return self.cost.total + self.base.total


def _estimate(s: Scenario, transport: str, label: str, per_task: Usage, base: Cost) -> Estimate:
    return Estimate(transport, label, per_task, price(per_task.times(s.tasks_per_month)), base)


def base_estimate(s: Scenario) -> Estimate:
    per_task = base_usage(s)
    return Estimate("base", "create + worker + state writes", per_task, price(per_task.times(s.tasks_per_month)))


def estimates(s: Scenario) -> list[Estimate]:
    """One estimate per transport, in a fixed order; a mixed row when only some tasks use webhooks."""
    base = base_estimate(s).cost
    fixed = poll_times(s.duration_s, fixed_delays(s.poll_interval_s))
    backoff = poll_times(s.duration_s, backoff_delays(s.backoff_initial_s, s.backoff_factor, s.backoff_cap_s))
    websocket = websocket_usage(s)
    webhook = webhook_usage(s)
    rows = [
        _estimate(s, f"poll-{s.poll_interval_s:g}s", f"polling every {s.poll_interval_s:g} s",
                  polling_usage(s, fixed), base),
        _estimate(s, "poll-backoff",
                  f"polling, backoff {s.backoff_initial_s:g} s x{s.backoff_factor:g} up to {s.backoff_cap_s:g} s",
                  polling_usage(s, backoff), base),
        _estimate(s, "long-poll", f"long-poll ?wait={s.long_poll_wait_s:g}", long_poll_usage(s), base),
        _estimate(s, "push-websocket", "WebSocket push", websocket, base),
        _estimate(s, "webhook", "webhooks (one callback per task)", webhook, base),
    ]
    if 0 < s.webhook_share < 1:
        mixed = websocket.times(1 - s.webhook_share) + webhook.times(s.webhook_share)
        rows.append(_estimate(s, "push-mixed", f"WebSocket + webhooks ({s.webhook_share:.0%})", mixed, base))
    return rows


def by_transport(s: Scenario) -> dict[str, Estimate]:
    return {row.transport: row for row in estimates(s)}
