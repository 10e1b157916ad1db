"""Tenant isolation on the push path: tenant A's WebSocket push lag and first-attempt webhook latency
while tenant B's callbacks are answered (phase ``quiet``) and while they are black-holed (phase
``black-hole``), in one run on one local stack with the template's defaults (15 s attempt deadline,
4 attempts per tenant). A short warm-up, not measured, starts the functions' environments first.

Each phase: B creates ``stalled_tasks`` tasks, half at once and the rest over the window, with callbacks
to a verifying receiver (quiet) or to a listener that accepts connections and never answers
(black-hole: every attempt of B's runs to its deadline). Three seconds later A creates ``tasks``
``sleep`` tasks evenly over ``arrival_window_s``, each with a callback to a verifying receiver and
followed over WebSocket. The two phases differ only in B's receiver.

- push lag = the terminal ``task.status`` frame's arrival − the terminal status's ``updated_at``;
- webhook latency = a version's first webhook arrival − that version's ``at`` (the stream write): the
  delivery-queue hop plus the attempt.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.clients import Follow, Http, PushConnection, close_all, open_connections
from bench.receiver import Receipt, WebhookSink
from bench.report import percentile

TENANT_A = {"api_key": "key-bench-tenant-a-0001", "webhook_secret": "whsec_" + "dGVuYW50LWEtYmVuY2gtc2VjcmV0"}
TENANT_B = {"api_key": "key-bench-tenant-b-0002", "webhook_secret": "whsec_" + "dGVuYW50LWItYmVuY2gtc2VjcmV0"}
TENANTS = {"tenant-a": TENANT_A, "tenant-b": TENANT_B}
PHASES = ("quiet", "black-hole")


@dataclass(frozen=True)
class IsolationPlan:
    tasks: int  # tenant A's tasks per phase
    stalled_tasks: int  # tenant B's tasks with black-holed callbacks (black-hole phase)
    min_duration_s: float
    max_duration_s: float
    arrival_window_s: float
    tasks_per_connection: int = 5
    deadline_s: float = 120.0
    seed: int = 12


class BlackHole:
    """A TCP listener on 127.0.0.1 that accepts every connection and never reads or answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self._held: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hooks"

    @property
    def connections(self) -> int:
        return len(self._held)

    def __enter__(self) -> BlackHole:
        self._listener.settimeout(0.2)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        for sock in self._held:
            sock.close()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(sock)


@dataclass
class Phase:
    name: str
    follows: list[Follow] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    stalled_ids: list[str] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    black_hole_connections: int = 0


def _parse_at(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def _create(http: Http, job_input: Any, callback: str, api_key: str) -> str:
    session = http.session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    try:
        monitor = await http.run(http.create, session, "sleep", job_input, callback)
    finally:
        session.close()
    return str(monitor["id"])


async def _run_phase(stack: Any, http: Http, plan: IsolationPlan, phase: Phase, stalled_url: str,
                     log: Any) -> None:
    rng = random.Random(plan.seed)
    durations = [round(rng.uniform(plan.min_duration_s, plan.max_duration_s), 2) for _ in range(plan.tasks)]
    with WebhookSink(TENANT_A["webhook_secret"]) as sink:
        sink.listeners.append(phase.receipts.append)
        count = max(1, -(-plan.tasks // plan.tasks_per_connection))
        connections: list[PushConnection] = await open_connections(stack.ws_url, TENANT_A["api_key"], count)
        try:
            start = time.time() + 0.5
            jobs = []
            # B's tasks: half before A starts, the rest spread over A's window.
            for index in range(plan.stalled_tasks):
                at = start if index < plan.stalled_tasks // 2 else start + plan.arrival_window_s * (
                    index / plan.stalled_tasks)
                jobs.append(_stalled(http, stalled_url, phase, at))

            async def prompt(index: int, at: float) -> None:
                await asyncio.sleep(max(0.0, at - time.time()))
                task_id = await _create(http, {"seconds": durations[index], "steps": 1}, sink.url, TENANT_A["api_key"])
                phase.task_ids.append(task_id)
                follow = Follow(task_id, "push-websocket")
                phase.follows.append(follow)
                await connections[index % len(connections)].subscribe(follow)

            lead = 3.0  # B's first attempts are under way before A starts
            for index in range(plan.tasks):
                jobs.append(prompt(index, start + lead + plan.arrival_window_s * (index + 0.5) / plan.tasks))
            log(f"isolation/{phase.name}: {plan.tasks} tasks of tenant A, {plan.stalled_tasks} of tenant B")
            await asyncio.gather(*jobs)
            await asyncio.wait_for(asyncio.gather(*(follow.done.wait() for follow in phase.follows)),
                                   timeout=plan.deadline_s)
            await _until_terminal_webhooks(sink, phase, plan.deadline_s)
        finally:
            await close_all(connections)


async def _stalled(http: Http, url: str, phase: Phase, at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.time()))
    phase.stalled_ids.append(await _create(http, {"seconds": 0.1, "steps": 1}, url, TENANT_B["api_key"]))


async def _until_terminal_webhooks(sink: WebhookSink, phase: Phase, timeout_s: float) -> None:
    wanted = set(phase.task_ids)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        done = {r.task_id for r in list(phase.receipts) if r.status in {"SUCCEEDED", "FAILED", "CANCELLED"}}
        if wanted <= done:
            return
        await asyncio.sleep(0.1)


async def _changes(http: Http, task_ids: list[str]) -> dict[tuple[str, int], float]:
    """(task, version) → the change's ``at``; every version's of the given tasks."""
    session = http.session()
    session.headers["Authorization"] = f"Bearer {TENANT_A['api_key']}"
    found: dict[tuple[str, int], float] = {}
    try:
        for task_id in task_ids:
            for event in await http.run(http.events, session, task_id):
                found[(task_id, int(event["version"]))] = _parse_at(event["at"])
    finally:
        session.close()
    return found


def _row(phase: Phase, changes: dict[tuple[str, int], float]) -> tuple[dict[str, Any], list[float], list[float]]:
    terminal = {task_id: max(at for (tid, _), at in changes.items() if tid == task_id)
                for task_id in {tid for tid, _ in changes}}
    push = [f.known_at - terminal[f.task_id] for f in phase.follows
            if f.known_at is not None and f.task_id in terminal]
    first: dict[tuple[str, int], float] = {}
    for receipt in phase.receipts:
        key = (receipt.task_id, receipt.version)
        if key in changes and key not in first:
            first[key] = receipt.at - changes[key]
    hooks = list(first.values())
    return {
        "phase": phase.name,
        "tasks": len(phase.task_ids),
        "stalled_tasks": len(phase.stalled_ids),
        "black_hole_connections": phase.black_hole_connections,
        "push_samples": len(push),
        "push_missed": len(phase.follows) - len(push),
        "push_p50_s": percentile(push, 50),
        "push_p95_s": percentile(push, 95),
        "push_p99_s": percentile(push, 99),
        "webhook_samples": len(hooks),
        "webhook_p50_s": percentile(hooks, 50),
        "webhook_p95_s": percentile(hooks, 95),
        "webhook_p99_s": percentile(hooks, 99),
    }, push, hooks


async def _measure(stack: Any, plan: IsolationPlan, log: Any) -> dict[str, Any]:
    http = Http(stack.http_url, TENANT_A["api_key"], workers=plan.tasks + plan.stalled_tasks + 8)
    rows, samples = [], {}
    try:
        with WebhookSink(TENANT_B["webhook_secret"]) as answering:
            warm_up = IsolationPlan(tasks=4, stalled_tasks=4, min_duration_s=0.2, max_duration_s=0.5,
                                    arrival_window_s=2, deadline_s=plan.deadline_s)
            await _run_phase(stack, http, warm_up, Phase("warm-up"), answering.url, log)
            for name in PHASES:
                phase = Phase(name)
                if name == "black-hole":
                    with BlackHole() as hole:
                        await _run_phase(stack, http, plan, phase, hole.url, log)
                        phase.black_hole_connections = hole.connections
                else:
                    await _run_phase(stack, http, plan, phase, answering.url, log)
                row, push, hooks = _row(phase, await _changes(http, phase.task_ids))
                rows.append(row)
                samples[f"{name}/push"], samples[f"{name}/webhook"] = push, hooks
                await asyncio.sleep(2.0)  # let the quiet phase's work drain before the next
    finally:
        http.close()
    quiet, held = rows
    ratio = (held["push_p99_s"] / quiet["push_p99_s"]) if quiet["push_p99_s"] else None
    return {"rows": rows, "samples": samples, "push_p99_ratio": ratio}


def run_isolation(plan: IsolationPlan, log: Any = print) -> dict[str, Any]:
    """Both phases on one local stack of their own (two tenants)."""
    from taskcast.local.testing import running_stack  # the stack pulls in moto: import only when running

    log("isolation: starting a local stack with two tenants")
    with running_stack(tenants=TENANTS, log_level="WARNING") as stack:
        return asyncio.run(_measure(stack, plan, log))
