"""The stream consumer at AWS scale, simulated: ``python -m bench.simulate --rate 1000 --parallelization 1,2,4,10``.

Runs the real consumer entry (``taskcast.push.batch.handle_batch``) with its deps built by
``PushDeps.from_settings``, exactly as ``streams.consumer`` does, but with every boto3 client it builds
replaced by an in-process fake with AWS-like latencies (``bench.simulate_clients.fake_boto3``):
DynamoDB ~5 ms a call, ``PostToConnection`` ~20 ms with a long tail, SQS ~10 ms. A writer puts task
changes into one shard at a steady rate; Lambda's event source mapping is played by one lane per
``ParallelizationFactor``, each with its own deps (its own execution environment, thread pools and
all), reading the shard every 250 ms in batches of up to the template's ``BatchSize``.

Whatever calls the consumer makes, in whatever order, are what is measured: the fakes only wait and count.

Measured per (rate, ParallelizationFactor): sustained changes/s, iterator age over time (now − write
time of the oldest record not yet checkpointed), post lag (write → frame received), calls per change
by operation, posts per change, order violations (must be 0), and the process's CPU use (the
simulation and the consumer share one interpreter: near one core means CPU-bound, not latency-bound).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from bench import report
from bench.simulate_clients import (
    FakeConnections,
    FakeQueues,
    calls_by_operation,
    fake_boto3,
    fake_connections_endpoint,
)
from bench.simulate_dynamodb import FakeDynamoDB
from bench.simulate_latency import Latency
from bench.simulate_stream import Lane, Shard, StreamRecord, TaskWriter, lane_of
from taskcast.local.template import dynamodb_create_table_args, load_template, resources_of_type
from taskcast.metrics import Counters
from taskcast.push.batch import handle_batch
from taskcast.push.deps import PushDeps
from taskcast.settings import Settings
from taskcast.store import SubscriptionStore

SHARD_WRITE_LIMIT = 1000  # records a second one DynamoDB stream shard takes
TENANT = "sim"
_TABLES = {
    "TasksTable": "tasks_table",
    "SubscriptionsTable": "subscriptions_table",
    "EndpointsTable": "endpoints_table",  # one Query per tenant per batch: its registered webhook endpoints
}


@dataclass(frozen=True)
class EventSource:
    """The consumer's event source mapping and function settings, as the template declares them."""

    batch_size: int = 100
    parallelization: int = 1
    max_retries: int = 10
    timeout_s: float = 60.0

    @classmethod
    def from_template(cls, template: dict[str, Any] | None = None) -> EventSource:
        template = template if template is not None else _template()
        function = template["Resources"]["StreamConsumerFunction"]["Properties"]
        (event,) = [e["Properties"] for e in function["Events"].values() if e["Type"] == "DynamoDB"]
        return cls(
            batch_size=int(event.get("BatchSize", 100)),
            parallelization=int(event.get("ParallelizationFactor", 1)),
            max_retries=int(event.get("MaximumRetryAttempts", 10)),
            timeout_s=float(function.get("Timeout", 60)),
        )


@dataclass(frozen=True)
class SimConfig:
    rate: float = 1000.0  # changes written a second
    parallelization: int = 1
    seconds: float = 15.0
    tasks: int = 200  # tasks in flight at once
    versions: int = 10  # versions per task: PENDING, RUNNING, progress …, SUCCEEDED
    subscribers: int = 1  # WebSocket subscribers per task
    batch_size: int = 100
    poll_interval_s: float = 0.25
    max_retries: int = 10
    timeout_s: float = 60.0
    dynamodb: Latency = Latency(0.005, 0.012)
    post: Latency = Latency(0.020, 0.060)
    sqs: Latency = Latency(0.010, 0.025)
    seed: int = 1
    sample_interval_s: float = 0.05
    drain_timeout_s: float = 120.0
    # On AWS each lane is its own process. Here they share one interpreter, and a thread waking from a
    # simulated network wait waits for the GIL up to the switch interval (5 ms by default) whenever another
    # thread computes: a delay per call that AWS does not have. A shorter interval keeps that small.
    switch_interval_s: float = 0.0005


@dataclass(frozen=True)
class SimPlan:
    """What ``python -m bench`` runs: the table's (rate, P) pairs, then a search for each P's highest
    rate with a bounded iterator age."""

    rates: tuple[float, ...] = (250.0, 1000.0)
    parallelizations: tuple[int, ...] = (1, 2, 4, 10)
    seconds: float = 12.0
    search_seconds: float = 10.0
    search_steps: int = 3  # 0: no search


QUICK_PLAN = SimPlan(rates=(1000.0,), parallelizations=(1, 4, 10), seconds=3.0, search_steps=0)
FULL_PLAN = SimPlan()


def simulation_settings(management_url: str = "https://sim.execute-api.us-east-1.amazonaws.com/prod") -> Settings:
    """The consumer's settings as the template's environment gives them (defaults for the rest)."""
    return Settings.from_env({
        "TASKCAST_MANAGEMENT_URL": management_url,
        "WEBHOOK_RETRY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/taskcast-webhook-retry",
        "WEBHOOK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/taskcast-webhook-dlq",
        "TASKCAST_TENANTS": json.dumps({TENANT: {"api_key": "sim-key-0123456789"}}),
    })


def table_args(settings: Settings, template: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``create_table`` arguments of the template's tables the consumer uses, named as ``settings`` names them."""
    template = template if template is not None else _template()
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    return [
        dynamodb_create_table_args(getattr(settings, field_name), tables[logical_id]["Properties"])
        for logical_id, field_name in _TABLES.items()
    ]


@functools.cache
def _template() -> dict[str, Any]:
    return load_template()


class _Metrics(Counters):
    """The consumer's metrics, summed over the run instead of published."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: dict[str, float] = {}
        self._totals_lock = threading.Lock()

    def flush(self) -> None:
        for totals in self.drain().values():
            with self._totals_lock:
                for name, value in totals.items():
                    self.totals[name] = self.totals.get(name, 0.0) + value


@dataclass
class _Progress:
    """Records checkpointed so far: how many, when, and each task's highest version."""

    completed: int = 0
    last_at: float = 0.0
    times: list[tuple[float, int]] = field(default_factory=list)
    highest: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, records: list[StreamRecord], at: float) -> None:
        with self.lock:
            self.completed += len(records)
            self.last_at = max(self.last_at, at)
            self.times.append((at, len(records)))
            for record in records:
                self.highest[record.task_id] = max(self.highest.get(record.task_id, 0), record.version)

    def between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(count for at, count in self.times if start <= at < end)


class _Warnings(logging.Handler):
    """The consumer's own warnings and errors (a record that failed, and why), the first few of each kind."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        detail = getattr(record, "error", None)
        key = f"{text}: {detail}" if detail else text
        if key in self.seen or len(self.seen) < 10:
            self.seen[key] = self.seen.get(key, 0) + 1


@contextlib.contextmanager
def _captured_warnings(names: Sequence[str] = ("taskcast", "streams")) -> Iterator[_Warnings]:
    handler = _Warnings()
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _context(timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    return SimpleNamespace(
        function_name="taskcast-StreamConsumerFunction",
        aws_request_id="simulated",
        get_remaining_time_in_millis=lambda: max(0, int((deadline - time.monotonic()) * 1000)),
    )


@dataclass
class _World:
    """One run's fakes, stream and writer."""

    settings: Settings
    dynamodb: FakeDynamoDB
    connections: FakeConnections
    queues: FakeQueues
    shard: Shard
    writer: TaskWriter


def _world(config: SimConfig) -> _World:
    settings = simulation_settings()
    dynamodb = FakeDynamoDB(table_args(settings), config.dynamodb, seed=config.seed)
    shard = Shard()
    connections = FakeConnections(config.post, shard.written_at, seed=config.seed + 1)
    queues = FakeQueues(config.sqs, seed=config.seed + 2)
    seeder = dynamodb.unmetered()
    subscriptions = SubscriptionStore(settings.subscriptions_table, client=seeder)

    def subscribe(task_id: str, connection_id: str) -> None:
        # What the subscribe handshake leaves behind: a confirmed subscription from version 0.
        connections.open(connection_id, task_id)
        begun = subscriptions.begin(task_id, connection_id, TENANT)
        subscriptions.confirm(begun, 0)

    def store_state(item: dict[str, Any]) -> None:
        seeder.put_item(TableName=settings.tasks_table, Item=item)

    writer = TaskWriter(shard=shard, rate=config.rate, tasks=config.tasks, versions=config.versions,
                        subscribers=config.subscribers, subscribe=subscribe, store_state=store_state,
                        tenant=TENANT, seed=config.seed)
    return _World(settings, dynamodb, connections, queues, shard, writer)


def _invoker(deps: PushDeps, timeout_s: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return handle_batch(event, _context(timeout_s), deps)

    return invoke


def run_simulation(config: SimConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One run at ``config.rate`` changes/s with ``config.parallelization`` lanes; the measured figures."""
    world = _world(config)
    progress = _Progress()
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(config.switch_interval_s)
    fakes = {"dynamodb": world.dynamodb, "apigatewaymanagementapi": world.connections, "sqs": world.queues}
    endpoint = fake_connections_endpoint(world.connections, world.settings.management_url)
    with fake_boto3(fakes), endpoint, _captured_warnings() as warnings:
        metrics = [_Metrics() for _ in range(config.parallelization)]
        # One execution environment per lane: deps (clients, pools) built as streams.consumer builds them.
        environments = [PushDeps.from_settings(world.settings, metrics=sink) for sink in metrics]
        try:
            lanes = [
                Lane(index, _invoker(deps, config.timeout_s), progress.add, config.batch_size, config.max_retries)
                for index, deps in enumerate(environments)
            ]
            measured = _drive(config, world.writer, world.shard, lanes, progress, log)
        finally:
            for deps in environments:
                deps.close()
            sys.setswitchinterval(switch_interval)
    if world.writer.error is not None:
        raise RuntimeError(f"the simulated stream writer failed: {world.writer.error!r}") from world.writer.error
    figures = _figures(config, world, lanes, metrics, progress, measured)
    figures["consumer_warnings"] = warnings.seen
    figures["invocation_errors"] = [error for lane in lanes for error in lane.stats.errors][:5]
    if log is not None and (warnings.seen or figures["invocation_errors"]):
        log(f"simulation: the consumer reported {sum(warnings.seen.values())} warnings "
            f"({'; '.join(list(warnings.seen)[:3])}) and {len(figures['invocation_errors'])} invocation errors")
    return figures


def _figures(
    config: SimConfig,
    world: _World,
    lanes: list[Lane],
    metrics: list[_Metrics],
    progress: _Progress,
    measured: tuple[float, float, bool, list[tuple[float, float]], float],
) -> dict[str, Any]:
    started, stopped, drained, ages, cpu_s = measured
    connections, writer = world.connections, world.writer
    completed = progress.completed
    window = stopped - started
    age_values = [age for _, age in ages]
    early_max = max((age for at, age in ages if at < window / 3), default=0.0)
    late_max = max((age for at, age in ages if at >= 2 * window / 3), default=0.0)
    missing = connections.missing(progress.highest)
    wires = (world.dynamodb.wire, connections.wire, world.queues.wire)
    dynamodb_calls = calls_by_operation(world.dynamodb.wire)
    lanes_stats = [lane.stats for lane in lanes]
    invocations = sum(stats.invocations for stats in lanes_stats)
    consumer_metrics: dict[str, float] = {}
    for sink in metrics:
        for name, value in sink.totals.items():
            consumer_metrics[name] = consumer_metrics.get(name, 0.0) + value
    elapsed = (progress.last_at or stopped) - started
    # Checkpointed records a second over the last two thirds of the writing window: the offered rate when
    # the consumer keeps up. When it does not, its lanes never idle, and the records each lane handles per
    # second of invocation, summed, are its capacity (the window's count is coarse then: a lane checkpoints
    # only at the end of a batch that takes seconds).
    steady_rate = progress.between(started + window / 3, stopped) / (window * 2 / 3) if window > 0 else 0.0
    capacity = sum(stats.completed / stats.busy_s for stats in lanes_stats if stats.busy_s > 0)
    slope = age_slope(ages, window / 3)
    is_bounded = bounded(slope, late_max)
    sustained = steady_rate if is_bounded else min(capacity, config.rate)
    consumer_cpu_s = cpu_s - writer.cpu_s

    def per_change(count: float) -> float | None:
        return round(count / completed, 3) if completed else None

    return {
        "rate": config.rate,
        "parallelization": config.parallelization,
        "seconds": config.seconds,
        "tasks_in_flight": config.tasks,
        "subscribers_per_task": config.subscribers,
        "written": len(world.shard),
        "completed": completed,
        "sustained_changes_per_s": round(sustained, 1),
        "steady_completed_per_s": round(steady_rate, 1),
        "capacity_per_s": round(capacity, 1),
        "completed_per_s": round(completed / elapsed, 1) if elapsed > 0 else 0.0,
        "backlog_at_stop": len(world.shard) - progress.between(started, stopped),
        "iterator_age_s": {
            "p50": _round(report.percentile(age_values, 50)),
            "max": _round(max(age_values, default=0.0)),
            "early_max": _round(early_max),
            "late_max": _round(late_max),
            "final": _round(age_values[-1] if age_values else 0.0),
            "slope": round(slope, 3),
        },
        "iterator_age_bounded": is_bounded,
        "post_lag_s": {
            "p50": _round(report.percentile(connections.lags_s, 50)),
            "p99": _round(report.percentile(connections.lags_s, 99)),
        },
        "dynamodb_calls_per_change": {op: per_change(count) for op, count in dynamodb_calls.items()},
        "dynamodb_calls_per_change_total": per_change(sum(dynamodb_calls.values())),
        "posts_per_change": per_change(connections.wire.calls["PostToConnection"]),
        "sqs_calls": calls_by_operation(world.queues.wire),
        "frames": connections.frames(),
        "duplicates": connections.duplicates,
        "violations": connections.violations + len(missing),
        "violation_examples": (connections.violation_examples + missing)[:20],
        "lost_records": sum(stats.given_up for stats in lanes_stats),
        "retried_batches": sum(stats.retried_batches for stats in lanes_stats),
        "invocations": invocations,
        "mean_batch": round(completed / max(1, invocations), 1),
        "lane_busy": round(sum(stats.busy_s for stats in lanes_stats) / max(1e-9, elapsed * len(lanes)), 3),
        "drained": drained,
        # The process's CPU time less the stream writer's: the consumer's, its fakes' and the lanes'.
        "cpu_utilisation": round(consumer_cpu_s / max(1e-9, elapsed), 3),
        "cpu_ms_per_change": round(consumer_cpu_s * 1000 / completed, 3) if completed else None,
        "writer_cpu_utilisation": round(writer.cpu_s / max(1e-9, elapsed), 3),
        # The mean delay past each simulated wait (the GIL, the host's scheduler): should be far below the
        # latencies simulated, or the figures are the host's rather than the design's.
        "wait_overshoot_ms": round(
            sum(wire.overshoot_s for wire in wires) * 1000 / max(1, sum(sum(wire.calls.values()) for wire in wires)), 3
        ),
        "consumer_metrics": {name: int(value) for name, value in sorted(consumer_metrics.items())},
        "iterator_age_series": [[round(at, 2), round(age, 3)] for at, age in ages[:: max(1, len(ages) // 200)]],
    }


def age_slope(ages: Sequence[tuple[float, float]], since: float) -> float:
    """The least-squares slope of the iterator age (seconds of age per second of run) from ``since`` on."""
    points = [(at, age) for at, age in ages if at >= since]
    if len(points) < 2:
        return 0.0
    mean_t = sum(at for at, _ in points) / len(points)
    mean_a = sum(age for _, age in points) / len(points)
    spread = sum((at - mean_t) ** 2 for at, _ in points)
    return sum((at - mean_t) * (age - mean_a) for at, age in points) / spread if spread else 0.0


def bounded(slope: float, late_max: float, max_slope: float = 0.1, floor_s: float = 1.0) -> bool:
    """The iterator age stayed bounded: over the last two thirds of the run it did not keep growing (its
    trend under ``max_slope``: a backlog growing by a tenth of the time that passes is a consumer ~10%
    short), or it never left the few poll intervals' worth that a keeping-up consumer shows anyway."""
    return slope <= max_slope or late_max <= floor_s


def _round(value: float) -> float | None:
    return None if value != value else round(value, 4)  # NaN (no samples): None


def _drive(
    config: SimConfig,
    writer: TaskWriter,
    shard: Shard,
    lanes: list[Lane],
    progress: _Progress,
    log: Callable[[str], None] | None,
) -> tuple[float, float, bool, list[tuple[float, float]], float]:
    """Write for ``config.seconds`` while polling into the lanes and sampling the iterator age; then let
    the invocations in flight finish. Returns (start, stop, drained, age samples, CPU seconds)."""
    threads = [threading.Thread(target=lane.run, name=f"lane-{lane.index}", daemon=True) for lane in lanes]
    for thread in threads:
        thread.start()
    writer_thread = threading.Thread(target=writer.run, name="stream-writer", daemon=True)
    cpu_started = time.process_time()
    started = time.monotonic()
    writer_thread.start()
    position = 0
    next_poll = started
    ages: list[tuple[float, float]] = []
    while (now := time.monotonic()) < started + config.seconds:
        if now >= next_poll:
            unread = shard.read(position)
            position += len(unread)
            by_lane: dict[int, list[StreamRecord]] = {}
            for record in unread:
                by_lane.setdefault(lane_of(record.task_id, len(lanes)), []).append(record)
            for index, records in by_lane.items():
                lanes[index].offer(records)
            next_poll += config.poll_interval_s
        oldest = [at for at in (lane.oldest_written_at() for lane in lanes) if at is not None]
        unread_head = shard.read(position)[:1]
        oldest += [record.written_at for record in unread_head]
        ages.append((now - started, now - min(oldest) if oldest else 0.0))
        time.sleep(min(config.sample_interval_s, max(0.0, next_poll - time.monotonic())) or 0.001)
    writer.stop.set()
    stopped = time.monotonic()
    writer_thread.join()
    for lane in lanes:
        lane.stop()
    deadline = stopped + config.drain_timeout_s
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    drained = not any(thread.is_alive() for thread in threads)
    cpu_s = time.process_time() - cpu_started
    if log is not None and not drained:
        log(f"simulation: an invocation was still running {config.drain_timeout_s:g} s after the run")
    return started, stopped, drained, ages, cpu_s


def search_max_rate(
    config: SimConfig, capacity: float, steps: int, log: Callable[[str], None] | None = None, cap: float = 2000.0
) -> dict[str, Any]:
    """The highest rate (of those tried) at which the iterator age stayed bounded, starting just under
    ``capacity`` (the consumer's sustained rate when overloaded): up by a quarter while bounded, then by
    bisection between the highest bounded and the lowest growing rate, in steps of 5 changes/s."""
    low, high = 0.0, None
    candidate = min(cap, _step(capacity * 0.9))
    tried: list[dict[str, Any]] = []
    for _ in range(steps):
        result = run_simulation(replace(config, rate=candidate), log)
        ok = result["iterator_age_bounded"] and result["violations"] == 0
        tried.append({"rate": candidate, "bounded": ok, "sustained_changes_per_s": result["sustained_changes_per_s"],
                      "iterator_age_max_s": result["iterator_age_s"]["max"]})
        if log:
            log(f"simulation search P={config.parallelization}: {candidate:g}/s "
                f"{'bounded' if ok else 'grows'} (age max {result['iterator_age_s']['max']} s)")
        if ok:
            low = candidate
        else:
            high = candidate
        if high is None:
            candidate = min(cap, max(low + 5, _step(low * 1.25)))
        else:
            candidate = _step((low + high) / 2) if low else _step(high * 0.7)
        if low >= cap or (high is not None and high - low <= max(5.0, 0.05 * high)):
            break
    return {"parallelization": config.parallelization, "max_bounded_rate": low, "first_unbounded_rate": high,
            "tried": tried}


def _step(rate: float) -> float:
    return max(5.0, 5.0 * round(rate / 5.0))


def run_plan(plan: SimPlan, base: SimConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The table's runs and, per P, the search; the ``"simulation"`` entry of the results JSON."""
    source = EventSource.from_template()
    base = replace(base, batch_size=source.batch_size, max_retries=source.max_retries, timeout_s=source.timeout_s)
    runs: list[dict[str, Any]] = []
    for parallelization in plan.parallelizations:
        for rate in plan.rates:
            config = replace(base, rate=rate, parallelization=parallelization, seconds=plan.seconds)
            result = run_simulation(config, log)
            runs.append(result)
            if log:
                log(f"simulation P={parallelization} at {rate:g}/s: {result['sustained_changes_per_s']} changes/s, "
                    f"iterator age max {result['iterator_age_s']['max']} s, violations {result['violations']}")
    searches: list[dict[str, Any]] = []
    if plan.search_steps:
        for parallelization in plan.parallelizations:
            top = max((run for run in runs if run["parallelization"] == parallelization), key=lambda run: run["rate"])
            capacity = top["rate"] * 1.25 if top["iterator_age_bounded"] else top["sustained_changes_per_s"]
            config = replace(base, parallelization=parallelization, seconds=plan.search_seconds)
            searches.append(search_max_rate(config, capacity, plan.search_steps, log))
    return {
        "plan": {**asdict(plan), "latencies_ms": _latencies(base), "batch_size": base.batch_size,
                 "poll_interval_s": base.poll_interval_s, "tasks_in_flight": base.tasks,
                 "versions_per_task": base.versions, "subscribers_per_task": base.subscribers},
        "template_parallelization": source.parallelization,
        "runs": runs,
        "max_sustainable": searches,
    }


def _latencies(config: SimConfig) -> dict[str, dict[str, float]]:
    return {name: {"median": latency.median_s * 1000, "p99": latency.p99_s * 1000}
            for name, latency in (("dynamodb", config.dynamodb), ("post", config.post), ("sqs", config.sqs))}


def target_check(simulation: dict[str, Any]) -> dict[str, Any] | None:
    """The issue's target, judged at the template's ParallelizationFactor and a shard's full write rate."""
    p = simulation["template_parallelization"]
    run = next((run for run in simulation["runs"]
                if run["parallelization"] == p and run["rate"] >= SHARD_WRITE_LIMIT), None)
    if run is None:
        return None
    return {
        "target": f"simulation: one shard's consumer keeps up with {SHARD_WRITE_LIMIT:,} changes/s at AWS latencies "
                  f"(ParallelizationFactor {p} as in template.yaml), iterator age bounded",
        "measured": f"{run['sustained_changes_per_s']:,.0f} changes/s, iterator age max "
                    f"{run['iterator_age_s']['max']} s ({'bounded' if run['iterator_age_bounded'] else 'growing'}), "
                    f"{run['violations']} violations",
        # Checkpoints come a batch at a time, so a consumer that keeps up counts a few percent under the rate.
        "met": run["iterator_age_bounded"] and run["violations"] == 0
        and run["sustained_changes_per_s"] >= 0.95 * SHARD_WRITE_LIMIT,
    }


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=_floats, default=(1000.0,), help="changes written a second (comma list)")
    parser.add_argument("--parallelization", type=_ints, default=(1, 2, 4, 10), help="ParallelizationFactor values")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long each run writes")
    parser.add_argument("--tasks", type=int, default=SimConfig.tasks, help="tasks in flight at once")
    parser.add_argument("--versions", type=int, default=SimConfig.versions, help="versions per task")
    parser.add_argument("--subscribers", type=int, default=SimConfig.subscribers, help="subscribers per task")
    parser.add_argument("--dynamodb-ms", type=Latency.parse, default=SimConfig.dynamodb,
                        help="DynamoDB latency: median[/p99] in ms (default 5/12)")
    parser.add_argument("--post-ms", type=Latency.parse, default=SimConfig.post,
                        help="PostToConnection latency: median[/p99] in ms (default 20/60)")
    parser.add_argument("--sqs-ms", type=Latency.parse, default=SimConfig.sqs, help="SQS latency (default 10/25)")
    parser.add_argument("--switch-interval-ms", type=float, default=SimConfig.switch_interval_s * 1000,
                        help="the interpreter's thread switch interval during a run (Python's default: 5)")
    parser.add_argument("--search", type=int, default=0, metavar="STEPS",
                        help="also search each P's highest bounded rate, in up to STEPS runs")
    parser.add_argument("--json", type=str, help="write the results here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = SimConfig(tasks=args.tasks, versions=args.versions, subscribers=args.subscribers,
                     dynamodb=args.dynamodb_ms, post=args.post_ms, sqs=args.sqs_ms,
                     switch_interval_s=args.switch_interval_ms / 1000)
    plan = SimPlan(rates=args.rate, parallelizations=args.parallelization, seconds=args.seconds,
                   search_seconds=args.seconds, search_steps=args.search)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    simulation = run_plan(plan, base, log)
    print(report.simulation_tables(simulation))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(simulation, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
