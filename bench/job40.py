"""The 40-second job: the wall time a client sees, from sending ``POST /tasks`` to knowing the task ended,
for a ``sleep`` job of J seconds (40 in full mode; quick mode uses a shorter one and says so), by transport.
R runs per transport, all at the same time; the job reports progress as ``sleep`` does by default."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench.clients import (
    TERMINAL,
    Follow,
    Http,
    PushConnection,
    backoff_delays,
    close_all,
    fixed_delays,
    long_poll,
    poll,
)
from bench.lag import TRANSPORTS, parse_at
from bench.receiver import WebhookSink


@dataclass(frozen=True)
class Job40Plan:
    job_s: float = 40.0
    runs: int = 3
    slack_s: float = 60.0  # followers give up this long after the job should have ended


async def run_job40(stack: Any, http: Http, plan: Job40Plan, log: Any = print) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    connections: list[PushConnection] = []
    # Per run: (sent, task id, follow): seen = known - sent; split at the end's write after the run.
    runs: dict[str, list[tuple[float, str, Follow]]] = {transport: [] for transport in TRANSPORTS}
    failed: dict[str, int] = dict.fromkeys(TRANSPORTS, 0)
    await _warm_up(http, len(TRANSPORTS) * plan.runs)
    log(f"job40: {plan.runs} x {plan.job_s:g} s sleep per transport, all at once")
    deadline = time.time() + plan.job_s + plan.slack_s
    with WebhookSink(stack.webhook_secret) as sink:

        async def one(transport: str) -> None:
            try:
                await follow_one(transport)
            except Exception as error:  # noqa: BLE001 - one failed run is counted, the others go on
                failed[transport] += 1
                log(f"job40: a {transport} run failed: {type(error).__name__}: {error}")

        async def follow_one(transport: str) -> None:
            session = http.session()
            connection = None
            if transport == "push-websocket":  # connected before the task exists, as a page would be
                connection = await PushConnection(stack.ws_url, stack.api_key).open()
                connections.append(connection)
            sent = time.time()
            callback = sink.url if transport == "webhook" else None
            monitor = await http.run(http.create, session, "sleep", {"seconds": plan.job_s}, callback)
            session.close()
            follow = Follow(monitor["id"], transport)
            if transport == "push-websocket":
                assert connection is not None
                await connection.subscribe(follow)
            elif transport == "webhook":
                sink.follow(follow, loop)
            elif transport == "poll-2s":
                await poll(http, follow, fixed_delays(2.0), deadline)
            elif transport == "poll-backoff":
                await poll(http, follow, backoff_delays(1.0, 1.5, 28.0), deadline)
            else:
                await long_poll(http, follow, 25.0, deadline)
            try:
                await asyncio.wait_for(follow.done.wait(), max(0.1, deadline - time.time()))
            except TimeoutError:
                raise TimeoutError(f"the end of {follow.task_id} was not known by the deadline") from None
            runs[transport].append((sent, follow.task_id, follow))

        try:
            await asyncio.gather(*(one(transport) for transport in TRANSPORTS for _ in range(plan.runs)))
        finally:
            await close_all(connections)
    ends = await _end_times(http, [task_id for group in runs.values() for _, task_id, _ in group])
    rows = []
    for transport in TRANSPORTS:
        done = [(sent, follow.known_at, ends.get(task_id)) for sent, task_id, follow in runs[transport]]
        seen = sorted(known - sent for sent, known, _ in done)  # type: ignore[operator]
        if not seen:
            rows.append({"transport": transport, "seen_s": None, "runs": 0, "failed": failed[transport]})
            continue
        split = [(end - sent, known - end) for sent, known, end in done if end is not None]  # type: ignore[operator]
        rows.append({
            "transport": transport,
            "seen_s": sum(seen) / len(seen),
            "best_s": seen[0],
            "worst_s": seen[-1],
            "runs": len(seen),
            "failed": failed[transport],
            "job_s": plan.job_s,
            # POST sent -> the worker wrote the end (create, worker start, the job and its progress writes)
            "ran_s": sum(ran for ran, _ in split) / len(split) if split else None,
            # the end written -> the client knew it (the transport's own share)
            "notified_s": sum(notified for _, notified in split) / len(split) if split else None,
        })
    return rows


async def _warm_up(http: Http, count: int) -> None:
    """As many short tasks as there will be runs, all at once, so that no run meets a cold handler (a
    first import or connection pool); the stack is warm after the other parts anyway."""
    async def one() -> None:
        session = http.session()
        try:
            monitor = await http.run(http.create, session, "sleep", {"seconds": 0.2})
            follow = Follow(monitor["id"], "warm-up")
            await long_poll(http, follow, 5.0, time.time() + 30)
        finally:
            session.close()

    await asyncio.gather(*(one() for _ in range(count)))


async def _end_times(http: Http, task_ids: list[str]) -> dict[str, float]:
    session = http.session()
    ends: dict[str, float] = {}
    try:
        for task_id in task_ids:
            events = await http.run(http.events, session, task_id)
            finished = [event for event in events if event.get("status") in TERMINAL]
            if finished:
                ends[task_id] = parse_at(finished[-1]["at"])
    finally:
        session.close()
    return ends
