"""Fan-out: one change pushed to N receivers, and where the time goes.

Shapes, for each N:
- ``websocket / one-task``: N connections subscribed to one task; one status change;
- ``websocket / many-tasks``: N tasks with one subscribed connection each; every task changes at once;
- ``webhook / many-tasks``: N tasks with a ``callback_url`` on the local receiver; every task changes at once
  (a task has one callback, so there is no one-task shape for webhooks).

The tasks are written straight to the task store and the change is written by the benchmark with the
store's own code (``TaskStore.update`` + ``transition``, the worker's write path), from 16 threads for the
many-task shapes: as N workers finishing together would, without tying up the local worker pool with N
sleeping jobs. Everything after the write is the stack's: stream, consumer, subscriber query, posts.

The changes are written once every subscriber has its snapshot (or every creation webhook arrived) and
the stack is idle again. Time to last delivery is measured from just before the change is written;
deliveries/s = N / that. The split per change comes from the call probe (``bench.timeline``): write end
→ the consumer's subscriber Query for that record (stream poll, invocation and any records queued
ahead), the Query itself, and Query → the last post (or the webhook's arrival).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from bench import probe as probe_mod
from bench.clients import Follow, PushConnection, bounded, open_connections
from bench.receiver import Receipt, WebhookSink
from bench.report import percentile
from bench.timeline import breakdown
from taskcast.models import Status, Task, transition
from taskcast.store import TaskStore

WRITERS = 16
SHAPES = (("websocket", "one-task"), ("websocket", "many-tasks"), ("webhook", "many-tasks"))


@dataclass(frozen=True)
class FanoutPlan:
    one_task_sizes: tuple[int, ...]
    many_task_sizes: tuple[int, ...]
    wait_s: float = 120.0  # the longest any one wait (subscriptions, deliveries) may take
    budget_s: float = 600.0  # no case starts after this long, and no wait outlasts it by much; the report says so

    def cases(self) -> list[tuple[str, str, int]]:
        sizes = sorted({*self.one_task_sizes, *self.many_task_sizes})
        return [
            (transport, shape, n)
            for n in sizes
            for transport, shape in SHAPES
            if n in (self.one_task_sizes if shape == "one-task" else self.many_task_sizes)
        ]


class Countdown:
    """Arrivals of expected keys, safe to feed from any thread; ``wait`` returns when all arrived."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: set[Hashable]) -> None:
        self.loop = loop
        self.expected = set(expected)
        self.arrived: dict[Hashable, float] = {}
        self.event = asyncio.Event()
        self._early: dict[Hashable, float] = {}  # arrivals before ``expect`` named the keys

    def expect(self, keys: set[Hashable]) -> None:
        """Set the keys once they are known; arrivals seen before count if they are among them."""
        self.expected = set(keys)
        self.arrived = {key: at for key, at in self._early.items() if key in self.expected}
        self._check()

    def arrive(self, key: Hashable, at: float) -> None:
        if _on_loop(self.loop):
            self._arrive(key, at)
        else:
            self.loop.call_soon_threadsafe(self._arrive, key, at)

    def _arrive(self, key: Hashable, at: float) -> None:
        if key not in self.expected:
            self._early.setdefault(key, at)
        elif key not in self.arrived:
            self.arrived[key] = at
            self._check()

    def _check(self) -> None:
        if self.expected and len(self.arrived) == len(self.expected):
            self.event.set()

    async def wait(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), timeout_s)
            return True
        except TimeoutError:
            return False


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class Fixture:
    """Tasks written straight to the stack's task table, as its tenant, and their changes."""

    def __init__(self, stack: Any) -> None:
        client = boto3.client(
            "dynamodb", endpoint_url=stack.moto_url, region_name=stack.region, aws_access_key_id="testing",
            aws_secret_access_key="testing", config=Config(max_pool_connections=2 * WRITERS),
        )
        self.store = TaskStore(stack.table_name("TasksTable"), client=client)
        self.subscriptions_table = stack.table_name("SubscriptionsTable")
        self.tenant = stack.tenant
        self.pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="bench-writer")

    def create(self, callback_url: str | None = None) -> str:
        task = Task(id=str(uuid.uuid4()), tenant=self.tenant, type="sleep", input={"seconds": 0},
                    callback_url=callback_url)
        return self.store.create(task).id

    def start(self, task_id: str) -> float:
        """Write RUNNING (version 2) as the worker does; the time the write returned."""
        self.store.update(task_id, lambda task: transition(task, Status.RUNNING, progress=0))
        return time.time()

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def create_many(self, count: int, callback_url: str | None = None) -> list[str]:
        return await bounded([self.run(self.create, callback_url) for _ in range(count)], at_once=WRITERS)

    async def start_many(self, task_ids: list[str]) -> list[float]:
        return await bounded([self.run(self.start, task_id) for task_id in task_ids], at_once=WRITERS)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


async def run_fanout(
    stack: Any, probe: probe_mod.Probes, plan: FanoutPlan, keep: list[PushConnection], log: Any = print
) -> tuple[list[dict], list[str]]:
    """The rows, and notes on what was skipped or cut short.

    Connections are left open (idle) in ``keep`` for the caller to close once nothing is measured any
    more: closing thousands starts as many ``$disconnect`` handlers, whose load would fall on whatever
    is measured next.
    """
    fixture = Fixture(stack)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    connections = keep
    ends = time.time() + plan.budget_s
    try:
        for transport, shape, n in plan.cases():
            left = ends - time.time()
            if left < 10:
                notes.append(f"fan-out {transport} / {shape} N = {n:,} skipped: the fan-out budget of "
                             f"{plan.budget_s:.0f} s was spent")
                continue
            wait_s = min(plan.wait_s, left)  # every wait of the case ends by the budget's end, or soon after
            log(f"fan-out: {transport} / {shape}, N = {n:,}")
            started = time.time()
            try:
                if transport == "websocket":
                    row = await _websocket(stack, fixture, probe, n, shape, wait_s, connections)
                else:
                    row = await _webhooks(stack, fixture, probe, n, wait_s)
            except SetupFailed as error:
                notes.append(f"fan-out {transport} / {shape} N = {n:,} not measured: {error}")
                log(f"  {error}")
                continue
            row["setup_and_run_s"] = time.time() - started
            rows.append(row)
            if row["delivered"] < n:
                notes.append(f"fan-out {transport} / {shape} N = {n:,}: {row['delivered']:,} delivered within "
                             f"{wait_s:.0f} s; the rate is over those")
            log(f"  delivered {row['delivered']:,}/{n:,}, last after {row['last_delivery_s']:.3f} s, "
                f"{row['deliveries_per_s']:,.0f}/s")
    finally:
        fixture.close()
    return rows, notes


class SetupFailed(RuntimeError):
    """The subscribers or receivers could not be made ready in time; nothing was measured."""


async def _websocket(stack: Any, fixture: Fixture, probe: probe_mod.Probes, n: int, shape: str,
                     wait_s: float, keep: list[PushConnection]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    task_ids = await fixture.create_many(1 if shape == "one-task" else n)
    pairs = [(index, task_ids[0] if shape == "one-task" else task_ids[index]) for index in range(n)]
    snapshots = Countdown(loop, set(pairs))
    changes = Countdown(loop, set(pairs))
    connection_index: dict[int, int] = {}

    errors: list[dict[str, Any]] = []

    def on_message(connection: PushConnection, message: dict[str, Any], at: float) -> None:
        if message.get("type") == "error":
            errors.append(message)
        if message.get("type") != "task.status":
            return
        key = (connection_index[id(connection)], message.get("task_id"))
        (snapshots if message.get("version") == 1 else changes).arrive(key, at)

    connections = await open_connections(stack.ws_url, stack.api_key, n, on_message)
    keep.extend(connections)
    for index, connection in enumerate(connections):
        connection_index[id(connection)] = index
    await bounded([connections[index].subscribe(_follow(task_id)) for index, task_id in pairs], at_once=200)
    if not await snapshots.wait(wait_s):
        answered = len(snapshots.arrived)
        if answered < 0.9 * n:
            raise SetupFailed(f"only {answered:,} of {n:,} subscriptions answered in {wait_s:.0f} s")
        # Nearly all: measure those (the row's ``n`` stays N; ``delivered`` tells how many got the change).
        changes.expect({key for key in pairs if key in snapshots.arrived})
    # after the creations' stream records (and webhooks) have settled
    t0, writes_done, calls = await _start_and_measure(fixture, probe, task_ids, changes, wait_s)
    row = _row("websocket", shape, n, t0, writes_done, changes.arrived, task_ids, calls, fixture, None)
    row["error_messages"] = len(errors)
    if errors:
        row["error_codes"] = sorted({str(error.get("code")) for error in errors})
    return row


async def _webhooks(stack: Any, fixture: Fixture, probe: probe_mod.Probes, n: int, wait_s: float) -> dict:
    loop = asyncio.get_running_loop()
    with WebhookSink(stack.webhook_secret) as sink:
        created = Countdown(loop, set())
        changes = Countdown(loop, set())

        def on_receipt(receipt: Receipt) -> None:
            (created if receipt.version == 1 else changes).arrive((receipt.task_id, receipt.version), receipt.at)

        sink.listeners.append(on_receipt)
        task_ids = await fixture.create_many(n, sink.url)
        created.expect({(task_id, 1) for task_id in task_ids})
        changes.expect({(task_id, 2) for task_id in task_ids})
        if not await created.wait(wait_s):
            raise SetupFailed(f"only {len(created.arrived):,} of {n:,} creation webhooks arrived in {wait_s:.0f} s")
        t0, writes_done, calls = await _start_and_measure(fixture, probe, task_ids, changes, wait_s)
        arrivals = {(task_id, version): at for (task_id, version), at in changes.arrived.items()}
    return _row("webhook", "many-tasks", n, t0, writes_done, arrivals, task_ids, calls, fixture, sink)


async def _start_and_measure(fixture: Fixture, probe: probe_mod.Probes, task_ids: list[str], changes: Any,
                             wait_s: float) -> tuple[float, float, Any]:
    """Start every task once the stack is quiet; (start, writes done, calls made meanwhile) once changes arrived."""
    await probe_mod.wait_until_quiet(probe, quiet_s=1.0, timeout_s=wait_s)
    mark = probe.mark()
    t0 = time.time()
    await fixture.start_many(task_ids)
    writes_done = time.time()
    await changes.wait(wait_s)
    return t0, writes_done, probe.since(mark)


def _follow(task_id: str) -> Follow:
    return Follow(task_id, "fanout")


def _row(transport: str, shape: str, n: int, t0: float, writes_done: float, arrived: dict[Any, float],
         task_ids: list[str], calls: list[probe_mod.Call], fixture: Fixture, sink: WebhookSink | None) -> dict:
    changed = set(task_ids)
    times = sorted(arrived.values())
    last = (times[-1] - t0) if times else float("nan")
    delivered = len(times)
    row: dict[str, Any] = {
        "transport": transport,
        "shape": shape,
        "n": n,
        "delivered": delivered,
        "deliveries_per_s": delivered / last if times and last > 0 else 0.0,
        "last_delivery_s": last,
        "first_delivery_s": (times[0] - t0) if times else None,
        "p50_delivery_s": percentile([t - t0 for t in times], 50),
        "writes_s": writes_done - t0,
        "breakdown": breakdown(
            calls,
            lambda task_id, _status, version: version == 2 and task_id in changed,
            fixture.subscriptions_table,
            {task_id: at for (task_id, _), at in arrived.items()} if sink is not None else None,
        ),
    }
    return row
