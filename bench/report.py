"""Results: percentiles, the JSON file (design.md's "Benchmark results" schema), markdown tables and plots."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TRANSPORT_ORDER = ("push-websocket", "webhook", "poll-2s", "poll-backoff", "long-poll")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        # Other work on the machine slows the local stack: the 1-minute load average when the run ended.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0 or math.isnan(value) or math.isnan(reference):
        return None
    return value / reference


def with_push_ratios(lag_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each lag row with ``*_vs_push`` ratios added (push-websocket is the reference)."""
    push = next((row for row in lag_rows if row["transport"] == "push-websocket"), None)
    keys = ("p50_s", "p95_s", "p99_s", "client_requests_per_task", "server_messages_per_task", "db_reads_per_task")
    rows = []
    for row in lag_rows:
        extra = {f"{key}_vs_push": ratio(row.get(key), push.get(key) if push else None) for key in keys}
        rows.append(row | {"vs_push": extra})
    return rows


def write_json(result: Mapping[str, Any], directory: Path = RESULTS_DIR, stamp: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp or timestamp()}.json"
    path.write_text(json.dumps(result, indent=2, default=_plain) + "\n")
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


# ---------------------------------------------------------------- markdown


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


def _ms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "–"
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}x"


_ALIGN = {"l": "---", "r": "---:", "c": ":-:"}


def markdown_table(header: Sequence[str], align: str, rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table; ``align`` has one letter per column: ``l``eft, ``r``ight or ``c``entre."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(_ALIGN[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def lag_table(rows: Iterable[Mapping[str, Any]]) -> str:
    header = ["transport", "tasks", "samples", "p50", "p95", "p99", "p99 vs push", "client requests / task",
              "vs push", "server messages / task", "DynamoDB reads / task", "vs push"]
    cells = []
    for row in rows:
        vs = row.get("vs_push", {})
        cells.append([
            row["transport"], row["tasks"], row.get("samples", row["tasks"]),
            _ms(row["p50_s"]), _ms(row["p95_s"]), _ms(row["p99_s"]), _x(vs.get("p99_s_vs_push")),
            _num(row["client_requests_per_task"]), _x(vs.get("client_requests_per_task_vs_push")),
            _num(row["server_messages_per_task"]), _num(row["db_reads_per_task"]),
            _x(vs.get("db_reads_per_task_vs_push")),
        ])
    return markdown_table(header, "l" + "r" * 11, cells)


def breakdown_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """Where the time of the traced changes went (p50 / p99), for rows that carry a ``breakdown``."""
    header = ["measurement", "changes traced", "write → subscriber Query (stream poll)", "Query",
              "Query → last post / arrival"]
    cells = []
    for row in rows:
        split = row.get("breakdown")
        if not split:
            continue
        name = row["transport"] + (f" / {row['shape']} N = {row['n']:,}" if "shape" in row else " (lag)")
        cells.append([
            name, split["changes_traced"],
            f"{_ms(split['stream_poll_p50_s'])} / {_ms(split['stream_poll_p99_s'])}",
            f"{_ms(split['subscriber_query_p50_s'])} / {_ms(split['subscriber_query_p99_s'])}",
            f"{_ms(split['posts_p50_s'])} / {_ms(split['posts_p99_s'])}",
        ])
    return markdown_table(header, "lrrrr", cells)


def fanout_table(rows: Iterable[Mapping[str, Any]]) -> str:
    header = ["transport", "shape", "N", "delivered", "deliveries/s", "last delivery", "p50 delivery",
              "stream poll (p50)", "subscriber query (p50)", "posts (p50 span)"]
    cells = []
    for row in rows:
        split = row.get("breakdown") or {}
        cells.append([
            row["transport"], row["shape"], f"{row['n']:,}", f"{row.get('delivered', row['n']):,}",
            _num(row["deliveries_per_s"]), _ms(row["last_delivery_s"]), _ms(row.get("p50_delivery_s")),
            _ms(split.get("stream_poll_p50_s")), _ms(split.get("subscriber_query_p50_s")),
            _ms(split.get("posts_p50_s")),
        ])
    return markdown_table(header, "ll" + "r" * 8, cells)


def job40_table(rows: Iterable[Mapping[str, Any]], job_s: float) -> str:
    header = ["transport", "seen (mean)", f"overhead over {job_s:g} s", "worst", "POST → end written",
              "end written → client knows", "runs"]
    cells = []
    for row in rows:
        if row.get("seen_s") is None:
            cells.append([row["transport"], *["–"] * 5, f"0 ({row.get('failed', 0)} failed)"])
            continue
        cells.append([
            row["transport"], f"{row['seen_s']:.3f} s", f"{row['seen_s'] - job_s:+.3f} s",
            f"{row.get('worst_s', row['seen_s']):.3f} s", f"{_num(row.get('ran_s'))} s", _ms(row.get("notified_s")),
            row.get("runs", 1),
        ])
    return markdown_table(header, "l" + "r" * 6, cells)


def isolation_table(isolation: Mapping[str, Any]) -> str:
    header = ["phase", "A tasks", "B tasks", "B connections held open", "push p50", "push p95", "push p99",
              "webhook 1st attempt p50", "p95", "p99"]
    rows = [[row["phase"], row["tasks"], row["stalled_tasks"], row["black_hole_connections"],
             _ms(row["push_p50_s"]), _ms(row["push_p95_s"]), _ms(row["push_p99_s"]),
             _ms(row["webhook_p50_s"]), _ms(row["webhook_p95_s"]), _ms(row["webhook_p99_s"])]
            for row in isolation["rows"]]
    table = markdown_table(header, "lrrrrrrrrr", rows)
    return table + f"\n\nPush p99 with B black-holed / quiet: {_x(isolation.get('push_p99_ratio'))}"


def targets_table(checks: Iterable[Mapping[str, Any]]) -> str:
    met = {True: "yes", False: "**no**", None: "n/a"}
    return markdown_table(["target", "measured", "met"], "llc",
                          ([check["target"], check["measured"], met[check["met"]]] for check in checks))


def startup_tables(startup: Mapping[str, Any]) -> str:
    """The startup part: the two modes side by side, then cold starts per function."""
    summary = startup["summary"]
    source, built = summary.get("from-source", {}), summary.get("artifacts", {})

    def idle(mode: str) -> str:
        roles = startup["modes"][mode]["idle"]["by_role"]
        split = ", ".join(f"{name} {roles[name]['cpu_percent']:.1f}" for name in sorted(roles))
        return f"{summary[mode]['idle_cpu_percent']:.1f} % ({split})"

    def round_trip(entry: Mapping[str, Any]) -> str:
        return f"{entry['rest_median_s'] * 1000:.1f} ms (p90 {entry['rest_p90_s'] * 1000:.1f} ms)"

    rows = [
        ["ready (build cached)", f"{source['ready_s']:.2f} s", f"{built['ready_s']:.2f} s"],
        [f"idle CPU, % of one core over {built['idle_window_s']:.0f} s (by process)", idle("from-source"),
         idle("artifacts")],
        ["processes in the stack's tree", source["processes"], built["processes"]],
        ["resident memory of the tree", f"{source['rss_mb']:,.0f} MB", f"{built['rss_mb']:,.0f} MB"],
        ["warm REST round trip, GET /openapi.json, median", round_trip(source), round_trip(built)],
    ]
    modes = markdown_table(["", "--from-source (in the stack's process)", "artifacts (processes of their own)"],
                           "lrr", rows)
    cold = markdown_table(
        ["function", "artifacts: init duration", "artifacts: first invoke", "from-source: handler import "
         "(fresh interpreter)", "from-source: interpreter + import", "from-source: first invoke"],
        "lrrrrr",
        ([row["function"], _ms(None if row["artifacts_init_duration_ms"] is None
                               else row["artifacts_init_duration_ms"] / 1000),
          _ms(row["artifacts_first_invoke_s"]) + (" (already warm)" if row.get("artifacts_invoked_before") else ""),
          _ms(row["from_source_import_s"]),
          _ms(row["from_source_import_process_s"]), _ms(row["from_source_first_invoke_s"])]
         for row in startup["cold_starts"]),
    )
    note = ("“already warm”: an event source invoked the function before this call (the init duration is "
            "that first invocation's).")
    return (f"{modes}\n\nCold start per function (one invocation each through the Lambda Invoke API, event "
            f"`{{}}`; from-source imports every handler before it is ready, so its column is the handler "
            f"module's import in a fresh interpreter):\n\n{cold}\n\n{note}")


# ---------------------------------------------------------------- plots


def plot_lag_cdf(samples: Mapping[str, Sequence[float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for transport in sorted(samples, key=_transport_rank):
        values = sorted(samples[transport])
        if not values:
            continue
        ys = [(index + 1) / len(values) for index in range(len(values))]
        axes.step([max(value, 1e-4) for value in values], ys, where="post", label=f"{transport} (n={len(values)})")
    axes.set_xscale("log")
    axes.set_xlabel("lag: client knows − terminal status written (s, log scale)")
    axes.set_ylabel("share of notifications")
    axes.set_title("Notification lag by transport (CDF)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_fanout(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        series.setdefault(f"{row['transport']} / {row['shape']}", []).append((row["n"], row["deliveries_per_s"]))
    for label, points in sorted(series.items()):
        points.sort()
        axes.plot([n for n, _ in points], [rate for _, rate in points], marker="o", label=label)
    axes.set_xscale("log")
    axes.set_xlabel("N (subscribers or callbacks)")
    axes.set_ylabel("deliveries per second")
    axes.set_title("Fan-out throughput against N")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _transport_rank(name: str) -> int:
    return TRANSPORT_ORDER.index(name) if name in TRANSPORT_ORDER else len(TRANSPORT_ORDER)


def simulation_tables(simulation: Mapping[str, Any]) -> str:
    """The simulation's runs, one row per (ParallelizationFactor, rate), and each P's highest bounded rate."""
    plan = simulation["plan"]
    latency = plan["latencies_ms"]
    template_p = simulation["template_parallelization"]
    lines = [
        f"Real consumer code (`handle_batch`) against in-process fakes: DynamoDB {latency['dynamodb']['median']:g} ms "
        f"(p99 {latency['dynamodb']['p99']:g}), PostToConnection {latency['post']['median']:g} ms "
        f"(p99 {latency['post']['p99']:g}); batches of up to {plan['batch_size']} read every "
        f"{plan['poll_interval_s'] * 1000:g} ms; {plan['tasks_in_flight']} tasks in flight, "
        f"{plan['versions_per_task']} versions each, {plan['subscribers_per_task']} subscriber(s) per task. "
        f"template.yaml's ParallelizationFactor: {template_p}. Sustained: the offered rate when the iterator age "
        "stays bounded, else the lanes' records per busy second. CPU: the process's, less the stream writer's, "
        "in cores. Wait overshoot: how late the fakes' waits ended on average (the host's load, not AWS's).",
        "",
    ]
    rows = []
    for run in simulation["runs"]:
        age = run["iterator_age_s"]
        calls = ", ".join(f"{op} {n:g}" for op, n in run["dynamodb_calls_per_change"].items())
        rows.append([
            f"{run['parallelization']}{' (template)' if run['parallelization'] == template_p else ''}",
            f"{run['rate']:,.0f}",
            f"{run['sustained_changes_per_s']:,.0f}",
            f"{_ms(age['p50'])} / {_ms(age['max'])}",
            "bounded" if run["iterator_age_bounded"] else "grows",
            f"{_ms(run['post_lag_s']['p50'])} / {_ms(run['post_lag_s']['p99'])}",
            f"{_num(run['dynamodb_calls_per_change_total'])} ({calls})",
            _num(run["posts_per_change"]),
            f"{run['violations']} / {run['lost_records']}",
            f"{run['cpu_utilisation']:.2f} ({_num(run['cpu_ms_per_change'])} ms)",
            f"{run['wait_overshoot_ms']:.1f} ms",
        ])
    lines.append(markdown_table(
        ["P", "offered /s", "sustained /s", "iterator age p50 / max", "age", "post lag p50 / p99",
         "DynamoDB calls per change", "posts per change", "violations / lost", "CPU cores (per change)",
         "wait overshoot"],
        "lrrrlrlrrrr", rows))
    if simulation.get("max_sustainable"):
        search_rows = [
            [str(entry["parallelization"]), f"{entry['max_bounded_rate']:,.0f}",
             "—" if entry["first_unbounded_rate"] is None else f"{entry['first_unbounded_rate']:,.0f}",
             ", ".join(f"{t['rate']:,.0f}{'✓' if t['bounded'] else '✗'}" for t in entry["tried"])]
            for entry in simulation["max_sustainable"]
        ]
        lines += ["", "Highest rate with a bounded iterator age, per ParallelizationFactor:", "",
                  markdown_table(["P", "bounded at /s", "grows at /s", "tried"], "lrrl", search_rows)]
    return "\n".join(lines)


def plot_iterator_age(simulation: Mapping[str, Any], path: Path) -> Path | None:
    """Iterator age over each run at the highest offered rate, one line per ParallelizationFactor."""
    runs = simulation["runs"]
    if not runs:
        return None
    top = max(run["rate"] for run in runs)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        if run["rate"] != top:
            continue
        series = run["iterator_age_series"]
        axes.plot([at for at, _ in series], [age for _, age in series], label=f"P={run['parallelization']}")
    axes.set_xlabel("time since the writer started (s)")
    axes.set_ylabel("iterator age (s)")
    axes.set_title(f"Simulated consumer at {top:,.0f} changes/s: iterator age")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
