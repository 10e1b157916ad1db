"""A burst: N short tasks created together, each followed over WebSocket by a connection of its own.

Every connection is opened first; then all tasks are created at once (as many ``POST /tasks`` in flight
as the client's pool allows) and each connection subscribes to its task as soon as the task exists. Lag =
the moment the connection receives the terminal ``task.status`` frame − the terminal status's
``updated_at`` (from the task's history, fetched after the run), as in ``bench/lag.py``. A burst loads the
worker, the stream consumer and the gateway at the same moment, where the steady arrivals of the lag part
spread it out.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from typing import Any

from bench.clients import Follow, Http, close_all, open_connections
from bench.lag import _terminal_times
from bench.report import percentile


@dataclass(frozen=True)
class BurstPlan:
    tasks: int = 200
    min_duration_s: float = 0.2
    max_duration_s: float = 1.0
    deadline_s: float = 60.0
    seed: int = 13


async def run_burst(stack: Any, http: Http, plan: BurstPlan, log: Any = print) -> dict[str, Any]:
    rng = random.Random(plan.seed)
    durations = [round(rng.uniform(plan.min_duration_s, plan.max_duration_s), 2) for _ in range(plan.tasks)]
    log(f"burst: opening {plan.tasks} WebSocket connections")
    connections = await open_connections(stack.ws_url, stack.api_key, plan.tasks)
    follows: list[Follow] = []
    subscribed_at: dict[str, float] = {}
    missed_note = None
    try:
        async def create_and_follow(connection: Any, seconds: float) -> None:
            session = http.session()
            try:
                monitor = await http.run(http.create, session, "sleep", {"seconds": seconds, "steps": 1})
            finally:
                session.close()
            follow = Follow(monitor["id"], "push-websocket")
            follows.append(follow)
            await connection.subscribe(follow)
            subscribed_at[follow.task_id] = time.time()

        started = time.time()
        log(f"burst: creating {plan.tasks} tasks at once (durations {plan.min_duration_s:g}–{plan.max_duration_s:g} s)")
        await asyncio.gather(*(create_and_follow(c, s) for c, s in zip(connections, durations, strict=True)))
        created_s = time.time() - started
        try:
            await asyncio.wait_for(asyncio.gather(*(f.done.wait() for f in follows)), timeout=plan.deadline_s)
        except TimeoutError:
            missed_note = "some burst followers did not see the end before the deadline; they are left out"
    finally:
        await close_all(connections)
    terminal_at = await _terminal_times(http, [follow.task_id for follow in follows])
    lags = [f.known_at - terminal_at[f.task_id] for f in follows
            if f.known_at is not None and f.task_id in terminal_at]
    # A task that ended before its subscribe was sent is known from the handshake's snapshot: its lag is the
    # client's own delay (the create answer under load), counted apart so that it is not read as push's.
    late = sum(1 for f in follows if f.task_id in terminal_at and terminal_at[f.task_id] < subscribed_at[f.task_id])
    return {
        "tasks": plan.tasks,
        "ended_before_subscribe": late,
        "samples": len(lags),
        "missed": plan.tasks - len(lags),
        "created_in_s": created_s,
        "p50_s": percentile(lags, 50),
        "p95_s": percentile(lags, 95),
        "p99_s": percentile(lags, 99),
        "max_s": max(lags) if lags else None,
        "notes": [missed_note] if missed_note else [],
    }


def burst_table(row: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "–" if value is None or math.isnan(value) else f"{value * 1000:,.0f}"

    return "\n".join([
        "| tasks | created in (s) | ended before subscribe | samples | missed | p50 (ms) | p95 (ms) | p99 (ms) "
        "| max (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {row['tasks']} | {row['created_in_s']:.1f} | {row.get('ended_before_subscribe', '–')} | {row['samples']} "
        f"| {row['missed']} | {ms(row['p50_s'])} "
        f"| {ms(row['p95_s'])} | {ms(row['p99_s'])} | {ms(row['max_s'])} |",
    ])
