"""``python -m bench [--quick]``: start a local stack on random ports, measure, print, record, plot.

Writes ``bench/results/<UTC timestamp>.json`` (design.md's "Benchmark results" schema, plus details),
the same tables as ``<timestamp>.md``, and ``<timestamp>-lag-cdf.png`` / ``<timestamp>-fanout.png``.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.burst import BurstPlan, burst_table, run_burst
from bench.clients import Http, close_all, keep_alive
from bench.fanout import FanoutPlan, run_fanout
from bench.isolation import IsolationPlan, run_isolation
from bench.job40 import Job40Plan, run_job40
from bench.lag import LagPlan, run_lag
from bench.probe import CallProbe, Probes, wait_until_quiet
from bench.simulate import FULL_PLAN, QUICK_PLAN, SimConfig, SimPlan, run_plan, target_check
from bench.startup import StartupPlan, run_startup
from taskcast.settings import Settings


@dataclass(frozen=True)
class Mode:
    name: str
    lag: LagPlan
    fanout: FanoutPlan
    job40: Job40Plan
    startup: StartupPlan
    simulation: SimPlan
    isolation: IsolationPlan
    burst: BurstPlan
    parts: tuple[str, ...]  # the parts run when --only names none


PARTS = ("startup", "simulate", "lag", "fanout", "job40", "isolation")
# The quick mode is a smoke run of every measurement on one stack, under 2 minutes: the startup and isolation
# parts each start stacks of their own (two and one), so they run only when named (--quick --only startup).
QUICK = Mode(
    "quick",
    LagPlan(tasks_per_transport=4, min_duration_s=1, max_duration_s=3, push_connections=50, arrival_window_s=4,
            deadline_s=25),
    FanoutPlan(one_task_sizes=(100,), many_task_sizes=(100,), wait_s=30, budget_s=45),
    Job40Plan(job_s=5, runs=1, slack_s=20),
    StartupPlan(idle_s=10, rest_requests=20, import_runs=1),
    QUICK_PLAN,
    IsolationPlan(tasks=10, stalled_tasks=20, min_duration_s=0.5, max_duration_s=2, arrival_window_s=8, deadline_s=60),
    BurstPlan(tasks=20, deadline_s=30),  # 200 in the full mode
    parts=("simulate", "lag", "fanout", "job40"),
)
FULL = Mode(
    "full",
    LagPlan(tasks_per_transport=40, min_duration_s=10, max_duration_s=60, push_connections=1000, arrival_window_s=90,
            long_poll_tasks=15, deadline_s=300),
    FanoutPlan(one_task_sizes=(100, 1000, 5000), many_task_sizes=(100, 1000), wait_s=180, budget_s=420),
    Job40Plan(job_s=40, runs=3, slack_s=60),
    StartupPlan(idle_s=20, rest_requests=50, import_runs=3),
    FULL_PLAN,
    IsolationPlan(tasks=30, stalled_tasks=40, min_duration_s=1, max_duration_s=5, arrival_window_s=40),
    BurstPlan(tasks=200),
    parts=PARTS,
)
STACK_PARTS = {"lag", "fanout", "job40"}  # the parts measured on the one probed stack (simulate needs none)
LOCAL_DELIVERY_THREADS = 60  # the local stack's delivery pollers (6) x the queue's BatchSize (10)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROBE_SITE = Path(__file__).resolve().parent / "probe_site"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under 2 minutes")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable)")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR, help="where results go")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--calls-dir", type=Path, help="keep the stack's probed AWS calls here (JSON lines)")
    return parser.parse_args(argv)


def raise_file_limit() -> None:
    """Thousands of WebSocket connections need two descriptors each in this one process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def quiet_stack_logs() -> None:
    for name in ("taskcast", "streams", "handlers", "botocore", "urllib3", "websockets"):
        logging.getLogger(name).setLevel(logging.WARNING)


async def measure(stack: Any, mode: Mode, parts: set[str], probe: Probes) -> dict[str, Any]:
    http = Http(stack.http_url, stack.api_key, workers=3 * mode.lag.tasks_per_transport + 3 * mode.job40.runs + 16)
    result: dict[str, Any] = {"lag": [], "fanout": [], "job40": [], "burst": None, "notes": [], "samples": {}}
    idle: list[Any] = []  # connections left open until nothing is measured any more
    pinger = asyncio.get_running_loop().create_task(keep_alive(idle))
    try:
        if "lag" in parts:
            lag = await _part("lag", run_lag(stack, http, probe, mode.lag, log), result)
            if lag is not None:
                result["lag"] = report.with_push_ratios(lag.rows)
                result["samples"] = lag.samples
                result["notes"] += lag.notes
                idle += lag.connections
            await _settle(probe, result)
            burst = await _part("burst", run_burst(stack, http, mode.burst, log), result)
            if burst is not None:
                result["notes"] += burst.pop("notes")
                result["burst"] = burst
        if "fanout" in parts:
            await _settle(probe, result)
            fanout = await _part("fan-out", run_fanout(stack, probe, mode.fanout, idle, log), result)
            if fanout is not None:
                result["fanout"], notes = fanout
                result["notes"] += notes
        if "job40" in parts:
            await _settle(probe, result)
            result["job40"] = await _part("job40", run_job40(stack, http, mode.job40, log), result) or []
    finally:
        pinger.cancel()
        await close_all(idle)
        http.close()
    if http.in_progress_retries:
        result["notes"].append(f"{http.in_progress_retries} POST /tasks retries met 409 idempotency-key-in-progress "
                               "(the first attempt, cut by the client's 30 s timeout, was still running)")
    return result


async def _settle(probe: Probes, result: dict[str, Any]) -> None:
    waited = await wait_until_quiet(probe, quiet_s=2.0, timeout_s=180.0)
    if waited > 2:
        log(f"waited {waited:.0f} s for the stack to finish the previous part's work")
        result["notes"].append(f"the stack needed {waited:.0f} s after a part to finish its work")


async def _part(name: str, work: Any, result: dict[str, Any]) -> Any:
    """Run one part; a failure is logged and noted, and the other parts still run."""
    started = time.time()
    try:
        value = await work
    except Exception as error:  # noqa: BLE001 - one broken part must not lose the others' results
        log(f"{name}: failed after {time.time() - started:.0f} s: {type(error).__name__}: {error}")
        result["notes"].append(f"{name} failed: {type(error).__name__}: {error}")
        return None
    log(f"{name}: done in {time.time() - started:.0f} s")
    return value


def targets(result: dict[str, Any], mode: Mode) -> list[dict[str, Any]]:
    """The issue's targets, judged on this run (they are stated for the full mode)."""
    checks: list[dict[str, Any]] = []
    lag = {row["transport"]: row for row in result["lag"]}
    push, poll2 = lag.get("push-websocket"), lag.get("poll-2s")
    subscribers = mode.lag.push_connections
    if push and poll2 and push["p99_s"] is not None and poll2["p50_s"] is not None:
        limit = poll2["p50_s"] / 20
        checks.append({
            "target": f"push p99 lag < 1/20 of 2 s polling's p50 ({subscribers:,} connected subscribers)",
            "measured": f"{push['p99_s'] * 1000:.0f} ms against {limit * 1000:.0f} ms",
            "met": push["p99_s"] < limit,
        })
        limit = poll2["client_requests_per_task"] / 10
        checks.append({
            "target": "push client requests per task < 1/10 of 2 s polling's",
            "measured": f"{push['client_requests_per_task']:.2f} against {limit:.2f}",
            "met": push["client_requests_per_task"] < limit,
        })
    one_k = next((row for row in result["fanout"]
                  if row["transport"] == "websocket" and row["shape"] == "one-task" and row["n"] == 1000), None)
    if one_k:
        checks.append({
            "target": "one change to 1,000 connections < 1 s",
            "measured": f"{one_k['last_delivery_s']:.3f} s",
            "met": one_k["delivered"] == 1000 and one_k["last_delivery_s"] < 1.0,
        })
    burst = result.get("burst")
    if burst and burst["p95_s"] == burst["p95_s"]:  # not NaN: some follower saw its end
        checks.append({
            "target": f"a burst of {burst['tasks']} short tasks: p95 terminal-push lag ≤ 1 s",
            "measured": f"{burst['p95_s'] * 1000:.0f} ms (p50 {burst['p50_s'] * 1000:.0f} ms, "
                        f"{burst['missed']} missed)",
            "met": burst["missed"] == 0 and burst["p95_s"] <= 1.0,
        })
    simulated = target_check(result["simulation"]) if result.get("simulation") else None
    if simulated:
        checks.append(simulated)
    push_job = next((row for row in result["job40"] if row["transport"] == "push-websocket"), None)
    if push_job and push_job.get("seen_s") is not None:
        job_s = mode.job40.job_s
        checks.append({
            "target": f"{job_s:g} s job seen by a push client < {job_s + 0.5:g} s",
            "measured": f"{push_job['worst_s']:.3f} s (worst of {push_job['runs']})",
            "met": push_job["worst_s"] < job_s + 0.5,
        })
    return checks


def render(result: dict[str, Any], mode: Mode, checks: list[dict[str, Any]], elapsed_s: float) -> str:
    machine = result["machine"]
    parts = [
        f"# taskcast benchmark ({mode.name} mode)",
        f"Machine: {machine['cores']} cores, Python {machine['python']}, {machine['platform']}; "
        f"load average {machine['load_average_1m']} at the end; run took {elapsed_s:.0f} s.",
    ]
    if result.get("startup"):
        parts += ["## Startup and idle: --from-source (the old in-process stack) against artifacts in processes",
                  report.startup_tables(result["startup"])]
    if result.get("simulation"):
        parts += ["## Simulation at AWS latencies (one shard, `python -m bench.simulate`)",
                  report.simulation_tables(result["simulation"])]
    if result["lag"]:
        plan = mode.lag
        parts += [
            f"## Notification lag\n{plan.tasks_per_transport} tasks per transport, durations "
            f"{plan.min_duration_s:g}–{plan.max_duration_s:g} s, created evenly over {plan.arrival_window_s:g} s"
            + (f" (long-poll: {plan.long_poll_tasks})" if plan.long_poll_tasks else "")
            + f"; push: {plan.push_connections:,} connections, each subscribed to {plan.tasks_per_connection} tasks. "
            "Per (client, task) pair.",
            report.lag_table(result["lag"]),
            "Where the time of each terminal change went (p50 / p99), from the probed calls:",
            report.breakdown_table(result["lag"]),
        ]
    if result.get("burst"):
        parts += [f"## A burst: {mode.burst.tasks} short tasks created together, each followed over WebSocket",
                  burst_table(result["burst"])]
    if result["fanout"]:
        parts += ["## Fan-out", report.fanout_table(result["fanout"])]
    if result["job40"]:
        note = "" if mode.job40.job_s == 40 else f" (quick mode: a {mode.job40.job_s:g} s job instead of 40 s)"
        parts += [f"## The 40-second job{note}", report.job40_table(result["job40"], mode.job40.job_s)]
    if result.get("isolation"):
        parts += [
            "## Tenant isolation: tenant A quiet, then while tenant B's callbacks are black-holed",
            report.isolation_table(result["isolation"]),
        ]
    if checks:
        parts += ["## Targets" + (" (stated for the full mode)" if mode.name != "full" else ""),
                  report.targets_table(checks)]
    if result["notes"]:
        parts += ["## Notes", "\n".join(f"- {note}" for note in result["notes"])]
    return "\n\n".join(parts) + "\n"


def stack_limits(mode: Mode) -> dict[str, str]:
    """The per-tenant limits the benchmark needs, set explicitly: it opens every connection, subscriber and
    long-poll as one tenant (thousands of subscribers on one task), which the defaults are there to stop.
    Connections are counted as if none closed in between, since ``$disconnect`` runs asynchronously. One
    change to 5,000 local connections takes 11-14 s on a loaded machine: its fan-out budget is raised to
    just under the consumer's 60 s timeout so the measurement is of the fan-out, not of the retry. The
    tenant's webhook attempts in flight are raised from 4 to every local delivery thread (6 pollers x 10
    messages): with one tenant the cap would measure that tenant's quota (about 4 / attempt time), not the
    delivery path; ``python -m bench --only isolation`` measures the cap, on a stack with the defaults."""
    defaults = Settings()
    connections = sum(mode.fanout.one_task_sizes) + sum(mode.fanout.many_task_sizes) + mode.lag.push_connections
    connections += mode.burst.tasks
    return {
        "TASKCAST_SUBSCRIBERS_PER_TASK": str(max(defaults.subscribers_per_task, *mode.fanout.one_task_sizes) + 100),
        "TASKCAST_CONNECTIONS_PER_TENANT": str(max(defaults.connections_per_tenant, connections + 100)),
        "TASKCAST_LONG_POLLS_PER_TENANT": str(max(defaults.long_polls_per_tenant, mode.lag.count("long-poll") + 5)),
        "TASKCAST_FANOUT_CHANGE_BUDGET": "50",
        "TASKCAST_WEBHOOK_TENANT_CONCURRENCY": str(max(defaults.webhook_tenant_concurrency, LOCAL_DELIVERY_THREADS)),
    }


def run_probed_stack(mode: Mode, parts: set[str], calls_dir: Path | None) -> dict[str, Any]:
    """The lag, fan-out and job parts, on one stack with the call probe on every process's path."""
    from taskcast.local.testing import running_stack  # the stack pulls in moto: import only when running

    local_probe = CallProbe()
    local_probe.install()
    try:
        with tempfile.TemporaryDirectory(prefix="taskcast-bench-") as scratch:
            folder = str(calls_dir or scratch)
            probes = Probes(local_probe, Path(folder))
            log(f"starting the local stack ({mode.name} mode: {', '.join(sorted(parts))})")
            # The probe goes on the stack's path and, after their artifacts and layers, on every function's.
            probe_path = os.pathsep.join([str(PROBE_SITE), str(PROJECT_ROOT)])
            with running_stack(
                python_path=[PROBE_SITE, PROJECT_ROOT],
                environment={
                    "TASKCAST_BENCH_PROBE_DIR": folder,
                    "TASKCAST_LOCAL_FUNCTION_PYTHONPATH": probe_path,
                    **stack_limits(mode),
                },
                log_level="WARNING",
            ) as stack:
                log(f"stack up: {stack.http_url} {stack.ws_url}")
                return asyncio.run(measure(stack, mode, parts, probes))
    finally:
        local_probe.uninstall()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    mode = QUICK if args.quick else FULL
    parts = set(args.only or mode.parts)
    raise_file_limit()
    quiet_stack_logs()

    started = time.time()
    startup: dict[str, Any] | None = None
    notes: list[str] = []
    if "startup" in parts:
        # First, before the probed stack exists: its two stacks (one per mode) have the machine to themselves.
        try:
            startup = run_startup(mode.startup, log)
            log(f"startup: done in {time.time() - started:.0f} s")
        except Exception as error:  # noqa: BLE001 - one broken part must not lose the others' results
            log(f"startup: failed: {type(error).__name__}: {error}")
            notes.append(f"startup failed: {type(error).__name__}: {error}")
    simulation: dict[str, Any] | None = None
    if "simulate" in parts:
        # Before the stack starts: the simulation is timed in one process and wants the cores to itself.
        simulation_started = time.time()
        try:
            simulation = run_plan(mode.simulation, SimConfig(), log)
            log(f"simulate: done in {time.time() - simulation_started:.0f} s")
        except Exception as error:  # noqa: BLE001 - one broken part must not lose the others' results
            log(f"simulate: failed: {type(error).__name__}: {error}")
            notes.append(f"simulate failed: {type(error).__name__}: {error}")
    measured: dict[str, Any] = {"lag": [], "fanout": [], "job40": [], "burst": None, "notes": [], "samples": {}}
    if parts & STACK_PARTS:
        measured = run_probed_stack(mode, parts & STACK_PARTS, args.calls_dir)
    isolation: dict[str, Any] | None = None
    if "isolation" in parts:
        # On a stack of its own (two tenants), after the probed one has stopped.
        try:
            isolation = run_isolation(mode.isolation, log)
            log(f"isolation: done at {time.time() - started:.0f} s")
        except Exception as error:  # noqa: BLE001 - one broken part must not lose the others' results
            log(f"isolation: failed: {type(error).__name__}: {error}")
            notes.append(f"isolation failed: {type(error).__name__}: {error}")
    measured["notes"] = notes + measured["notes"]
    elapsed = time.time() - started
    samples = measured.pop("samples")
    result = {
        "machine": report.machine(),
        "mode": mode.name,
        **measured,
        "plan": {"lag": asdict(mode.lag), "fanout": asdict(mode.fanout), "job40": asdict(mode.job40),
                 "startup": asdict(mode.startup), "simulation": asdict(mode.simulation),
                 "isolation": asdict(mode.isolation), "burst": asdict(mode.burst)},
        "elapsed_s": elapsed,
        "lag_samples_s": samples,
    }
    if startup is not None:
        result["startup"] = startup
    if simulation is not None:
        result["simulation"] = simulation
    if isolation is not None:
        result["isolation_samples_s"] = isolation.pop("samples")
        result["isolation"] = isolation
    checks = targets(result, mode)
    result["targets"] = checks
    stamp = report.timestamp()
    path = report.write_json(result, args.out, stamp)
    text = render(result, mode, checks, elapsed)
    (args.out / f"{stamp}.md").write_text(text)
    if not args.no_plots:
        if samples:
            report.plot_lag_cdf(samples, args.out / f"{stamp}-lag-cdf.png")
        if result["fanout"]:
            report.plot_fanout(result["fanout"], args.out / f"{stamp}-fanout.png")
        if simulation is not None:
            report.plot_iterator_age(simulation, args.out / f"{stamp}-iterator-age.png")
    print(text)
    log(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
