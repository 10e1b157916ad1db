"""The local stack's own cost, side by side for its two modes in one run.

``from-source`` is the old architecture (``TASKCAST_LOCAL_FROM_SOURCE=1``: handlers imported into the
stack's process, on threads); ``artifacts`` is the default (each function runs from its ``sam build``
artifact in execution environments of its own, started by ``awslambdaric``). For each mode, one stack
after the other (never both at once, so they do not compete for the CPU):

- **ready**: from starting ``taskcast local`` to its ready line, with the build already cached
  (``python -m taskcast.local.artifacts`` runs first and its time is reported apart);
- **cold start per function**: each template function invoked once through the stack's Lambda Invoke API
  (``RequestResponse``, event ``{}``: errors are expected and fine); for ``artifacts`` the environment's
  init duration from ``/_local/functions``; ``from-source`` has no init phase per function (the stack
  imports every handler before it is ready), so the handler module's import in a fresh interpreter of the
  dev venv stands in for it, labelled as such;
- **warm REST round trip**: median of N ``GET /openapi.json`` through the gateway (authorizer-free route,
  REST function behind it) after a warm-up;
- **idle CPU** of the stack's whole process tree (stack, moto's child, function environments): user +
  system ticks from ``/proc/<pid>/stat`` over a fixed window once all of the above is done, as % of one core.

No call probe goes on these stacks' paths: the figures are the stack's alone. Everything on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODES: dict[str, dict[str, str]] = {"from-source": {"TASKCAST_LOCAL_FROM_SOURCE": "1"}, "artifacts": {}}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class StartupPlan:
    idle_s: float = 20.0  # the idle CPU window
    rest_requests: int = 50  # warm GET /openapi.json round trips, after rest_warmup
    rest_warmup: int = 5
    import_runs: int = 3  # fresh interpreters per handler module (from-source's stand-in for a cold start)
    invoke_timeout_s: float = 30.0  # one cold invocation; bounds the part if a function hangs
    start_timeout_s: float = 120.0


# ---------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    ticks: int  # utime + stime, in clock ticks
    rss_pages: int


def parse_stat(text: str) -> ProcStat:
    """One ``/proc/<pid>/stat`` line. The command name (field 2) may hold spaces and parentheses, so the
    fields are counted from the last ``)``: state is field 3, ppid 4, utime 14, stime 15, rss 24."""
    pid = int(text[: text.index(" ")])
    rest = text[text.rindex(")") + 2:].split()
    return ProcStat(pid=pid, ppid=int(rest[1]), ticks=int(rest[11]) + int(rest[12]), rss_pages=int(rest[21]))


def _all_stats(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    stats = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stats[int(entry.name)] = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):  # exited while we read, or a kernel thread oddity
            continue
    return stats


def tree(root: int, stats: Mapping[int, ProcStat]) -> dict[int, ProcStat]:
    """``root`` and every descendant of it found in ``stats``."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in found:
            found[pid] = stats[pid]
            todo += children.get(pid, [])
    return found


def role(pid: int, root: int) -> str:
    """What a process of the stack's tree is, from its command line."""
    if pid == root:
        return "stack"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if "moto_process" in command:
        return "moto"
    if "awslambdaric" in command:
        return "functions"
    return "other"


def cpu_delta(before: Mapping[int, ProcStat], after: Mapping[int, ProcStat]) -> dict[int, int]:
    """Ticks each process used between two snapshots; one born in between counts from zero. A process that
    ended in between is lost (its ticks go to its parent's cutime only once reaped), so callers report the
    process counts at both ends."""
    return {pid: stat.ticks - (before[pid].ticks if pid in before else 0) for pid, stat in after.items()}


def idle_cpu(root: int, seconds: float, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """CPU of ``root``'s process tree over ``seconds`` of doing nothing, as % of one core, by role."""
    before = tree(root, _all_stats())
    started = time.monotonic()
    sleep(seconds)
    after = tree(root, _all_stats())
    window = time.monotonic() - started
    delta = cpu_delta(before, after)
    roles: dict[str, dict[str, float]] = {}
    for pid, ticks in delta.items():
        entry = roles.setdefault(role(pid, root), {"processes": 0, "cpu_percent": 0.0, "rss_mb": 0.0})
        entry["processes"] += 1
        entry["cpu_percent"] += 100 * ticks / CLOCK_TICKS / window
        entry["rss_mb"] += after[pid].rss_pages * PAGE_BYTES / 2**20
    return {
        "window_s": round(window, 2),
        "cpu_percent": round(100 * sum(delta.values()) / CLOCK_TICKS / window, 2),
        "rss_mb": round(sum(stat.rss_pages for stat in after.values()) * PAGE_BYTES / 2**20, 1),
        "processes_start": len(before),
        "processes_end": len(after),
        "by_role": {name: {key: round(value, 2) for key, value in entry.items()} for name, entry in roles.items()},
    }


# ---------------------------------------------------------------- one mode


def ensure_build(log: Callable[[str], None]) -> float:
    """Build (or, normally, reuse) the artifacts before the ready time is taken; returns its seconds."""
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "taskcast.local.artifacts"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=900, check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"python -m taskcast.local.artifacts failed: {done.stderr[-2000:]}")
    log(f"startup: artifacts ready in {seconds:.1f} s")
    return seconds


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=15) as answer:  # noqa: S310 - the stack's loopback URL
        return json.loads(answer.read())


def cold_invocations(stack: Any, timeout_s: float) -> dict[str, dict[str, Any]]:
    """Invoke every function once (sequentially: a cold start alone on the machine) and time the call."""
    import boto3
    from botocore.config import Config

    # stack.client("lambda") with a bounded read and no retries: a hung function must not stall the part.
    lam = boto3.client("lambda", endpoint_url=stack.lambda_url, region_name=stack.region,
                       aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing",
                       config=Config(read_timeout=timeout_s, connect_timeout=5, retries={"max_attempts": 0}))
    results: dict[str, dict[str, Any]] = {}
    for logical_id, function in stack.functions.items():
        # An event source may have got there first (S3's s3:TestEvent reaches UploadArrived through SQS
        # right after start): then this call is not the cold one, and the row says so.
        before = _get_json(f"{stack.http_url}/_local/functions").get(logical_id, {})
        started = time.monotonic()
        try:
            answer = lam.invoke(FunctionName=function["name"], InvocationType="RequestResponse", Payload=b"{}")
            answer["Payload"].read()
            error = answer.get("FunctionError")
        except Exception as failure:  # noqa: BLE001 - a failed call is reported, the others still run
            error = f"{type(failure).__name__}: {failure}"
        results[logical_id] = {"handler": function["handler"], "first_invoke_s": time.monotonic() - started,
                               "function_error": error, "invoked_before": before.get("invocations", 0)}
    return results


def rest_round_trips(http_url: str, warmup: int, count: int) -> dict[str, Any]:
    import requests

    url = f"{http_url}/openapi.json"
    times: list[float] = []
    statuses: set[int] = set()
    with requests.Session() as session:  # kept alive, as a client's page would
        for index in range(warmup + count):
            started = time.perf_counter()
            answer = session.get(url, timeout=30)
            elapsed = time.perf_counter() - started
            statuses.add(answer.status_code)
            if index >= warmup:
                times.append(elapsed)
    ordered = sorted(times)
    return {"requests": count, "median_s": statistics.median(times), "min_s": ordered[0],
            "p90_s": ordered[int(0.9 * (len(ordered) - 1))], "statuses": sorted(statuses)}


def measure_mode(mode: str, plan: StartupPlan, log: Callable[[str], None]) -> dict[str, Any]:
    from taskcast.local.testing import running_stack

    with ExitStack() as stack_scope:
        started = time.monotonic()
        stack = stack_scope.enter_context(running_stack(
            environment=MODES[mode], python_path=[PROJECT_ROOT], log_level="WARNING",
            start_timeout_s=plan.start_timeout_s,
        ))
        ready_s = time.monotonic() - started
        log(f"startup/{mode}: ready in {ready_s:.2f} s")
        cold = cold_invocations(stack, plan.invoke_timeout_s)
        described = _get_json(f"{stack.http_url}/_local/functions")
        for logical_id, entry in cold.items():
            durations = described.get(logical_id, {}).get("init_durations_ms") or []
            entry["init_duration_ms"] = durations[0] if durations else None
        rest = rest_round_trips(stack.http_url, plan.rest_warmup, plan.rest_requests)
        log(f"startup/{mode}: REST round trip median {rest['median_s'] * 1000:.1f} ms; idle for {plan.idle_s:g} s")
        time.sleep(1.0)  # let the last request's threads finish before the window opens
        idle = idle_cpu(stack.process.pid, plan.idle_s)
        log(f"startup/{mode}: idle CPU {idle['cpu_percent']:.1f} % of one core ({idle['processes_end']} processes)")
    return {"ready_s": ready_s, "cold": cold, "rest": rest, "idle": idle, "functions": described}


# ---------------------------------------------------------------- from-source's stand-in for an init


_IMPORT_SNIPPET = (
    "import importlib, sys, time; t = time.perf_counter(); importlib.import_module(sys.argv[1]); "
    "print(time.perf_counter() - t)"
)


def import_times(modules: Iterable[str], runs: int) -> dict[str, dict[str, float]]:
    """Each handler module imported in a fresh interpreter of the dev venv, from the source tree, as the
    ``--from-source`` stack imports it: the import alone, and the whole process (interpreter start + import),
    median of ``runs``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TASKCAST_", "PYTHONPATH", "AWS_ENDPOINT_URL"))}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    results: dict[str, dict[str, float]] = {}
    for module in sorted(set(modules)):
        imports, processes = [], []
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run(  # noqa: S603 - our own interpreter
                [sys.executable, "-c", _IMPORT_SNIPPET, module], cwd=PROJECT_ROOT, env=env, capture_output=True,
                text=True, timeout=60, check=True,
            )
            processes.append(time.perf_counter() - started)
            imports.append(float(done.stdout.strip().splitlines()[-1]))
        results[module] = {"import_s": statistics.median(imports), "process_s": statistics.median(processes)}
    return results


def handler_module(handler: str) -> str:
    return handler.rsplit(".", 1)[0]


# ---------------------------------------------------------------- the part


def run_startup(plan: StartupPlan, log: Callable[[str], None]) -> dict[str, Any]:
    build_s = ensure_build(log)
    modes = {mode: measure_mode(mode, plan, log) for mode in MODES}
    handlers = {entry["handler"] for entry in modes["artifacts"]["cold"].values()}
    imports = import_times((handler_module(handler) for handler in handlers), plan.import_runs)
    rows = []
    for logical_id, entry in modes["artifacts"]["cold"].items():
        source = modes["from-source"]["cold"].get(logical_id, {})
        imported = imports[handler_module(entry["handler"])]
        rows.append({
            "function": logical_id,
            "handler": entry["handler"],
            "artifacts_init_duration_ms": entry["init_duration_ms"],
            "artifacts_first_invoke_s": entry["first_invoke_s"],
            "artifacts_function_error": entry["function_error"],
            "artifacts_invoked_before": entry["invoked_before"],
            "from_source_import_s": imported["import_s"],
            "from_source_import_process_s": imported["process_s"],
            "from_source_first_invoke_s": source.get("first_invoke_s"),
            "from_source_function_error": source.get("function_error"),
        })
    summary = {
        mode: {"ready_s": value["ready_s"], "idle_cpu_percent": value["idle"]["cpu_percent"],
               "idle_window_s": value["idle"]["window_s"], "rss_mb": value["idle"]["rss_mb"],
               "processes": value["idle"]["processes_end"], "rest_median_s": value["rest"]["median_s"],
               "rest_p90_s": value["rest"]["p90_s"]}
        for mode, value in modes.items()
    }
    return {"build_check_s": build_s, "summary": summary, "cold_starts": rows,
            "modes": {mode: {key: value[key] for key in ("ready_s", "rest", "idle", "functions")}
                      for mode, value in modes.items()}}
