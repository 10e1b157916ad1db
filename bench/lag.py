"""Notification lag: the same task durations followed by every transport in one run.

For each transport, K ``sleep`` tasks (the same K random durations for every transport). Push: C open
WebSocket connections, each subscribing to ``tasks_per_connection`` push tasks, so every push task has
C × T / K subscribers and the stack serves C connected subscribers throughout. Webhook: each task has a
``callback_url`` on a local receiver that verifies the signature. Polling every 2 s, polling with backoff
1 s × 1.5 up to 28 s, long-poll ``?wait=25``. A few more tasks nobody follows give the reads every task
costs anyway (worker, stream consumer), subtracted to get the reads a transport adds.

Lag = the moment a client knows the terminal status − the terminal status's ``updated_at`` (the
worker's timestamp, from the task's history, fetched after the run and not counted).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench import probe as probe_mod
from bench.clients import (
    TERMINAL,
    Follow,
    Http,
    PushConnection,
    backoff_delays,
    bounded,
    fixed_delays,
    long_poll,
    open_connections,
    poll,
)
from bench.receiver import WebhookSink
from bench.report import percentile
from bench.timeline import breakdown

TRANSPORTS = ("push-websocket", "webhook", "poll-2s", "poll-backoff", "long-poll")
UNFOLLOWED = "unfollowed"


@dataclass(frozen=True)
class LagPlan:
    tasks_per_transport: int
    min_duration_s: float
    max_duration_s: float
    push_connections: int
    arrival_window_s: float  # each transport's tasks are created evenly over this window
    tasks_per_connection: int = 2
    long_poll_tasks: int | None = None  # fewer long-polls when their re-reads would saturate local DynamoDB
    unfollowed_tasks: int = 4
    steps: int = 1  # RUNNING, then the end: the lag of the end is what is measured
    long_poll_wait_s: float = 25.0
    poll_interval_s: float = 2.0
    deadline_s: float = 240.0  # every follower gives up this long after the first task is created
    seed: int = 6

    def durations(self) -> list[float]:
        rng = random.Random(self.seed)
        low, high = self.min_duration_s, self.max_duration_s
        return [round(rng.uniform(low, high), 2) for _ in range(self.tasks_per_transport)]

    def count(self, transport: str) -> int:
        if transport == "long-poll" and self.long_poll_tasks is not None:
            return min(self.long_poll_tasks, self.tasks_per_transport)
        if transport == UNFOLLOWED:
            return self.unfollowed_tasks
        return self.tasks_per_transport


@dataclass
class LagResult:
    rows: list[dict[str, Any]]
    samples: dict[str, list[float]]
    notes: list[str]
    connections: list[PushConnection]  # still open: the caller closes them when nothing is measured any more


def parse_at(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def run_lag(stack: Any, http: Http, probe: probe_mod.Probes, plan: LagPlan, log: Any = print) -> LagResult:
    durations = plan.durations()
    deadline = time.time() + plan.deadline_s
    notes: list[str] = []
    with WebhookSink(stack.webhook_secret) as sink:
        log(f"lag: opening {plan.push_connections} WebSocket connections")
        connections = await open_connections(stack.ws_url, stack.api_key, plan.push_connections)
        try:
            mark = probe.mark()
            follows, tasks = await _create_and_follow(stack, http, sink, connections, plan, durations, deadline, log)
            pending = [follow.done.wait() for group in follows.values() for follow in group]
            log(f"lag: waiting for {len(pending)} followers to see the end (at most {plan.deadline_s:.0f} s)")
            await asyncio.wait_for(_all(pending), timeout=max(1.0, deadline - time.time()) + 5)
        except TimeoutError:
            notes.append("some followers did not see the end before the deadline; they are left out")
        calls = probe.since(mark)
    terminal_at = await _terminal_times(http, [task_id for ids in tasks.values() for task_id in ids])
    reads = probe_mod.reads_by_task(calls, {task_id for ids in tasks.values() for task_id in ids})
    baseline = _mean([reads[task_id] for task_id in tasks[UNFOLLOWED]])
    subscriptions = stack.table_name("SubscriptionsTable")
    rows, samples = [], {}
    for transport in TRANSPORTS:
        row, lags = _summarize(
            transport, follows[transport], tasks[transport], terminal_at, reads, baseline, connections
        )
        if transport in ("push-websocket", "webhook"):
            row["breakdown"] = _end_breakdown(calls, transport, tasks[transport], follows[transport], subscriptions)
        rows.append(row)
        samples[transport] = lags
    notes.append(
        f"DynamoDB reads: read calls (GetItem/Query/...) naming the task, counted at boto3 in the stack's process; "
        f"a task nobody follows costs {baseline:.1f} (worker + stream consumer), subtracted before dividing by "
        "the (client, task) pairs."
    )
    return LagResult(rows, samples, notes, connections)


def _end_breakdown(
    calls: list[probe_mod.Call], transport: str, task_ids: list[str], follows: list[Follow], subscriptions: str
) -> dict[str, Any]:
    """Where the time of each task's terminal change went, on the stream path."""
    ids = set(task_ids)
    arrivals = None
    if transport == "webhook":
        arrivals = {f.task_id: f.known_at for f in follows if f.known_at is not None}

    def is_end(task_id: str, status: str, _version: int) -> bool:
        return task_id in ids and status in TERMINAL

    return breakdown(calls, is_end, subscriptions, arrivals)


async def _all(waits: list[Any]) -> None:
    await asyncio.gather(*waits)


async def _create_and_follow(
    stack: Any,
    http: Http,
    sink: WebhookSink,
    connections: list[PushConnection],
    plan: LagPlan,
    durations: list[float],
    deadline: float,
    log: Any,
) -> tuple[dict[str, list[Follow]], dict[str, list[str]]]:
    follows: dict[str, list[Follow]] = {transport: [] for transport in TRANSPORTS}
    tasks: dict[str, list[str]] = {transport: [] for transport in (*TRANSPORTS, UNFOLLOWED)}
    followers: list[asyncio.Task[Any]] = []
    loop = asyncio.get_running_loop()

    # Who subscribes to which push task: C x T subscriptions spread evenly over the K push tasks.
    subscribers: dict[int, list[PushConnection]] = {}
    for index, connection in enumerate(connections):
        for round_ in range(plan.tasks_per_connection):
            task_index = (index * plan.tasks_per_connection + round_) % len(durations)
            subscribers.setdefault(task_index, []).append(connection)

    async def create(transport: str, index: int, seconds: float, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        job_input = {"seconds": seconds, "steps": plan.steps}
        callback = sink.url if transport == "webhook" else None
        session = http.session()
        try:
            monitor = await http.run(http.create, session, "sleep", job_input, callback)
        finally:
            session.close()
        task_id = monitor["id"]
        tasks[transport].append(task_id)
        if transport == UNFOLLOWED:
            return
        if transport == "push-websocket":
            for connection in subscribers.get(index, []):
                follow = Follow(task_id, transport)
                follows[transport].append(follow)
                await connection.subscribe(follow)
            return
        follow = Follow(task_id, transport)
        follows[transport].append(follow)
        if transport == "webhook":
            sink.follow(follow, loop)
        elif transport == "poll-2s":
            followers.append(loop.create_task(poll(http, follow, fixed_delays(plan.poll_interval_s), deadline)))
        elif transport == "poll-backoff":
            followers.append(loop.create_task(poll(http, follow, backoff_delays(1.0, 1.5, 28.0), deadline)))
        elif transport == "long-poll":
            followers.append(loop.create_task(long_poll(http, follow, plan.long_poll_wait_s, deadline)))

    # A steady arrival of tasks: each transport's tasks spread evenly over the window, the transports
    # interleaved, so that every transport meets the same load at the same time.
    start = time.time() + 0.5
    kinds = (*TRANSPORTS, UNFOLLOWED)
    jobs = []
    for rank, transport in enumerate(kinds):
        count = plan.count(transport)
        for index in range(count):
            at = start + plan.arrival_window_s * (index + (rank + 0.5) / len(kinds)) / count
            jobs.append(create(transport, index, durations[index % len(durations)], at))
    log(f"lag: creating {len(jobs)} tasks over {plan.arrival_window_s:g} s "
        f"({plan.tasks_per_transport} per transport, durations {plan.min_duration_s:g}–{plan.max_duration_s:g} s)")
    await asyncio.gather(*jobs)
    return follows, tasks


async def _terminal_times(http: Http, task_ids: list[str]) -> dict[str, float]:
    session = http.session()

    async def one(task_id: str) -> tuple[str, float | None]:
        events = await http.run(http.events, session, task_id)
        ends = [event for event in events if event.get("status") in TERMINAL]
        return task_id, parse_at(ends[-1]["at"]) if ends else None

    try:
        pairs = await bounded([one(task_id) for task_id in task_ids], at_once=8)
    finally:
        session.close()
    return {task_id: at for task_id, at in pairs if at is not None}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _summarize(
    transport: str,
    follows: list[Follow],
    task_ids: list[str],
    terminal_at: dict[str, float],
    reads: dict[str, int],
    baseline: float,
    connections: list[PushConnection],
) -> tuple[dict[str, Any], list[float]]:
    # A connection's HTTP upgrade (and any handshake tried again) is shared by the tasks it followed.
    upgrade = {id(f): (1 + c.failed_handshakes) / len(c.follows) for c in connections for f in c.follows.values()}
    seen = [f for f in follows if f.known_at is not None and f.task_id in terminal_at]
    lags = [f.known_at - terminal_at[f.task_id] for f in seen]  # type: ignore[operator]
    pairs = max(1, len(follows))
    requests = sum(f.requests + upgrade.get(id(f), 0) for f in follows) / pairs
    added_reads = sum(reads.get(task_id, 0) - baseline for task_id in task_ids)
    row = {
        "transport": transport,
        "tasks": len(task_ids),
        "samples": len(lags),
        "missed": len(follows) - len(seen),
        "p50_s": percentile(lags, 50),
        "p95_s": percentile(lags, 95),
        "p99_s": percentile(lags, 99),
        "max_s": max(lags) if lags else None,
        "client_requests_per_task": requests,
        "server_messages_per_task": sum(f.messages for f in follows) / pairs,
        "db_reads_per_task": max(0.0, added_reads / pairs),
        "db_reads_per_task_total": sum(reads.get(task_id, 0) for task_id in task_ids) / max(1, len(task_ids)),
        "subscribers_per_task": len(follows) / max(1, len(task_ids)),
        "errors": sum(f.errors for f in follows),
    }
    return row, lags
