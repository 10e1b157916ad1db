"""The fault-injection run: many tasks with webhooks and WebSocket subscribers on a real local stack while
receivers fail, clients drop, stream records turn poison and the stream pollers stop and restart.

``run_chaos(config)`` starts the stack, drives the tasks, waits for every outcome and returns a
``ChaosReport`` (figures plus the invariant violations found). The pytest module runs it reduced; the command
``python -m tests.chaos --tasks 1000`` runs it full size and prints the figures as JSON.

Faults injected:
- webhook receiver: ``fault_rate`` of requests answer 500, time out (held past ``TASKCAST_WEBHOOK_TIMEOUT``)
  or have the connection reset; at most ``max_faults_per_id`` per delivery, fewer than the retry schedule;
- WebSocket: ``drop_rate`` of clients close mid-task (after RUNNING) and resubscribe with ``since_version``;
- poison records: ``tests/chaos/poison.py``, wrapped around the consumer's handler, fails a stable share of
  those records, twice each, before they pass;
- the stream pollers (and so the consumer) stop for ``outage_s`` ``restarts`` times mid-run while moto keeps
  running, then resume from the stream positions saved in ``TASKCAST_LOCAL_STATE_DIR``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from taskcast.local.testing import RunningStack, running_stack
from tests.chaos.poison import is_poison
from tests.chaos.receiver import FAULTS, flaky_receiver
from tests.support.webhook_receiver import WebhookReceiver

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
TENANT = {"chaos": {"api_key": "key-chaos-3141592653", "webhook_secret": "whsec_" + "Y2hhb3Mtc2VjcmV0LTI3MTgyODE4Mjg="}}


@dataclass
class ChaosConfig:
    tasks: int = 80
    concurrency: int = 24
    seed: int = 11
    fault_rate: float = 0.30
    drop_rate: float = 0.20
    poison_percent: float = 5.0
    restarts: int = 2
    outage_s: float = 1.5
    task_seconds: float = 1.0
    task_steps: int = 2
    webhook_timeout_s: float = 1.0
    breaker_cool_down_s: float = 1.0
    retry_schedule: str = "0.2,0.5,1,1,2,2"
    max_faults_per_id: int = 4
    # The run's one tenant sends every webhook of the run: its in-flight cap (4 by default, a fairness
    # limit between tenants) is raised, as the benchmarks do, so the run measures losses, not that cap.
    webhook_tenant_concurrency: int = 40
    task_timeout_s: float = 120.0
    settle_timeout_s: float = 120.0


@dataclass
class ClientLog:
    task_id: str = ""
    dropped: bool = False
    connections: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    subscribe_retries: int = 0  # subscribes sent again after an ``internal_error`` answer
    connect_retries: int = 0  # connections opened again after the handshake timed out
    error: str = ""


@dataclass
class ChaosReport:
    config: dict[str, Any]
    tasks: int = 0
    tasks_terminal: int = 0
    versions: int = 0
    websocket_messages: int = 0
    websocket_duplicates: int = 0
    websocket_drops: int = 0
    websocket_reconnects: int = 0
    websocket_subscribe_retries: int = 0  # "internal_error, try again" answers a client retried
    websocket_connect_retries: int = 0  # handshakes that timed out and were opened again
    webhook_requests: int = 0
    webhook_faults: dict[str, int] = field(default_factory=dict)
    webhook_retries: int = 0
    webhook_deliveries: int = 0
    webhook_duplicates: int = 0
    webhook_out_of_order: int = 0
    webhook_unverified: int = 0
    webhook_dead_lettered: int = 0
    poison_records: int = 0
    poison_raised: int = 0  # times the consumer raised on them (the stack's log)
    stream_batches_given_up: int = 0  # records the stream mapping sent to its on-failure queue
    poller_restarts: int = 0
    function_timeouts: dict[str, int] = field(default_factory=dict)  # invocations that hit their timeout
    stream_positions: list[str] = field(default_factory=list)
    lost_websocket_terminal: int = 0
    lost_webhook_terminal: int = 0
    lost_webhook_versions: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


# ------------------------------------------------------------------------------------------------ clients
# The local stack's log line for an invocation that ran past its function's timeout: "[Function id] Task timed out…".
TIMED_OUT = re.compile(r"\[(\w+) \w+\] [^\n]*Task timed out")


# A client does what the ``internal_error`` answer asks ("try again"): it sends the subscribe again, from
# the last version it has, after a short pause; this often, then it gives up and reports the error.
SUBSCRIBE_RETRIES = 3
RETRY_PAUSE_S = 0.5


def _receive(connection: ClientConnection, log: ClientLog, deadline: float, highest: int) -> dict[str, Any] | None:
    while True:
        message = json.loads(connection.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("type") == "task.status" and message.get("task_id") == log.task_id:
            log.messages.append(message)
            return message
        if message.get("type") == "error":
            if message.get("code") == "internal_error" and log.subscribe_retries < SUBSCRIBE_RETRIES:
                log.subscribe_retries += 1
                time.sleep(RETRY_PAUSE_S * log.subscribe_retries)  # a back-off, not a wait for an event
                connection.send(json.dumps({"action": "subscribe", "task_id": log.task_id,
                                            "since_version": highest}))
                continue
            log.error = json.dumps(message)
            return None


def _open(stack: RunningStack, api_key: str, log: ClientLog, connections: contextlib.ExitStack) -> ClientConnection:
    """A connection, opened again (as a client reconnects) when the gateway's handshake times out: a $connect
    slowed by a saturated stack is not a lost message, and the run counts these."""
    for attempt in range(1, SUBSCRIBE_RETRIES + 2):
        try:
            return connections.enter_context(connect(stack.websocket_url(api_key), open_timeout=30))
        except TimeoutError:
            if attempt > SUBSCRIBE_RETRIES:
                raise
            log.connect_retries += 1
    raise AssertionError("unreachable")


def _subscribe(stack: RunningStack, api_key: str, log: ClientLog, since_version: int,
               connections: contextlib.ExitStack) -> ClientConnection:
    connection = _open(stack, api_key, log, connections)
    log.connections += 1
    connection.send(json.dumps({"action": "subscribe", "task_id": log.task_id, "since_version": since_version}))
    return connection


def _follow(stack: RunningStack, api_key: str, callback_url: str, drop: bool, config: ChaosConfig) -> ClientLog:
    log = ClientLog(dropped=drop)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    answer = session.post(f"{stack.http_url}/tasks", timeout=60, json={
        "type": "sleep", "input": {"seconds": config.task_seconds, "steps": config.task_steps},
        "callback_url": callback_url})
    if answer.status_code != 202:
        log.error = f"create answered {answer.status_code}: {answer.text}"
        return log
    log.task_id = answer.json()["id"]
    deadline = time.monotonic() + config.task_timeout_s
    highest = 0
    try:
        with contextlib.ExitStack() as connections:
            connection = _subscribe(stack, api_key, log, 0, connections)
            while True:
                message = _receive(connection, log, deadline, highest)
                if message is None:
                    return log
                highest = max(highest, message["version"])
                if message["status"] in TERMINAL:
                    return log
                if drop and message["status"] == "RUNNING" and log.connections == 1:
                    connection.close()  # drop mid-task, then resume after the last version seen
                    connection = _subscribe(stack, api_key, log, highest, connections)
    except (TimeoutError, ConnectionClosed, OSError) as error:
        log.error = f"{type(error).__name__}: {error} (last version {highest})"
    return log


# ------------------------------------------------------------------------------------------------ faults
def _restart_pollers(stack: RunningStack, config: ChaosConfig, created: threading.Semaphore,
                     done: threading.Event, report: ChaosReport, state_dir: Path) -> None:
    for index in range(config.restarts):
        # Spread the outages over the run: wait until this share of the tasks has been created.
        wanted = max(1, config.tasks * (index + 1) // (config.restarts + 1))
        for _ in range(wanted - (config.tasks * index // (config.restarts + 1) if index else 0)):
            if not created.acquire(timeout=config.task_timeout_s) or done.is_set():
                return
        requests.post(f"{stack.http_url}/_local/streams/stop", timeout=120).raise_for_status()
        report.stream_positions.append(_position(state_dir))
        done.wait(config.outage_s)  # the outage itself: records pile up in the stream meanwhile
        requests.post(f"{stack.http_url}/_local/streams/start", timeout=60).raise_for_status()
        report.poller_restarts += 1


def _position(state_dir: Path) -> str:
    path = state_dir / "stream-positions.json"
    return ",".join(json.loads(path.read_text()).values()) if path.exists() else ""


def _dead_letters(stack: RunningStack, queue: str = "WebhookDeadLetterQueue") -> int:
    sqs = stack.client("sqs")
    url = stack.queue_url(queue)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(value) for value in attributes.values())


# ------------------------------------------------------------------------------------------------ checks
def _check_client(log: ClientLog, report: ChaosReport) -> dict[int, dict[str, Any]]:
    """A client's view after dropping repeats: versions 1..N in order, repeats identical, a terminal last."""
    seen: dict[int, dict[str, Any]] = {}
    for message in log.messages:
        version = message["version"]
        if version in seen:
            report.websocket_duplicates += 1
            if seen[version] != message:
                report.violations.append(f"{log.task_id}: version {version} repeated with other content")
            continue
        expected = max(seen, default=0) + 1
        if version != expected:
            report.violations.append(f"{log.task_id}: websocket version {version} after {expected - 1}")
        seen[version] = message
    return seen


def _check(logs: list[ClientLog], receiver: WebhookReceiver, report: ChaosReport, config: ChaosConfig) -> None:
    hits_by_task: dict[str, list[Any]] = {}
    hits = receiver.requests_for(None)
    for hit in hits:
        hits_by_task.setdefault(str(hit.data.get("task_id", "")), []).append(hit)
    report.webhook_requests = len(hits)
    report.webhook_faults = dict(Counter(hit.answer.kind for hit in hits if hit.answer.kind in FAULTS))
    report.webhook_retries = len(hits) - len({hit.webhook_id for hit in hits})
    report.webhook_unverified = sum(not hit.verified for hit in hits)
    if report.webhook_unverified:
        report.violations.append(f"{report.webhook_unverified} webhooks did not verify")
    for log in logs:
        if log.error or not log.task_id:
            report.violations.append(f"client of {log.task_id or '?'}: {log.error or 'no task'}")
        report.websocket_messages += len(log.messages)
        report.websocket_drops += int(log.dropped and log.connections > 1)
        report.websocket_reconnects += max(0, log.connections - 1)
        report.websocket_subscribe_retries += log.subscribe_retries
        report.websocket_connect_retries += log.connect_retries
        seen = _check_client(log, report)
        terminal = [message for message in seen.values() if message["status"] in TERMINAL]
        if not terminal:
            report.lost_websocket_terminal += 1
            continue
        report.tasks_terminal += 1
        last = terminal[0]["version"]
        report.versions += last
        report.poison_records += sum(is_poison(log.task_id, version, config.poison_percent)
                                     for version in range(1, last + 1))
        _check_webhooks(log.task_id, last, terminal[0], hits_by_task.get(log.task_id, []), report)


def _check_webhooks(task_id: str, last: int, terminal: dict[str, Any], hits: list[Any], report: ChaosReport) -> None:
    delivered: dict[str, Any] = {}
    newest = 0
    for hit in hits:
        if hit.webhook_id != f"{task_id}.{hit.version}":
            report.violations.append(f"{task_id}: webhook-id {hit.webhook_id} for version {hit.version}")
        if hit.answer.kind != "ok":
            continue
        if hit.webhook_id in delivered:
            report.webhook_duplicates += 1
            if delivered[hit.webhook_id].data != hit.data:
                report.violations.append(f"{task_id}: {hit.webhook_id} delivered twice with other content")
            continue
        delivered[hit.webhook_id] = hit
        report.webhook_deliveries += 1
        # Webhooks are retried one by one, so a late retry may arrive after a newer version (receivers drop
        # it by version); counted, not a violation.
        report.webhook_out_of_order += int(hit.version < newest)
        newest = max(newest, hit.version)
    if f"{task_id}.{last}" not in delivered:
        report.lost_webhook_terminal += 1
    elif delivered[f"{task_id}.{last}"].data != terminal:
        report.violations.append(f"{task_id}: the terminal webhook differs from the terminal WebSocket message")
    report.lost_webhook_versions += sum(f"{task_id}.{version}" not in delivered for version in range(1, last + 1))


# ------------------------------------------------------------------------------------------------ the run
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def poison_site(folder: Path, percent: float, failures: int = 2) -> Path:
    """A folder holding the poisoner's ``sitecustomize.py`` and its settings."""
    site = folder / "poison-site"
    site.mkdir()
    ledger = folder / "poison-ledger"  # the failures so far, counted across the consumer's processes
    ledger.mkdir()
    shutil.copy(Path(__file__).with_name("poison_site") / "sitecustomize.py", site)
    (site / "poison.json").write_text(json.dumps({"percent": percent, "failures": failures, "ledger": str(ledger)}))
    return site


def run_chaos(config: ChaosConfig | None = None) -> ChaosReport:
    config = config or ChaosConfig()
    report = ChaosReport(config=asdict(config))
    started = time.monotonic()
    (name, tenant), = TENANT.items()
    environment = {
        "TASKCAST_WEBHOOK_RETRY_SCHEDULE": config.retry_schedule,
        "TASKCAST_WEBHOOK_TIMEOUT": str(config.webhook_timeout_s),
        "TASKCAST_WEBHOOK_TENANT_CONCURRENCY": str(config.webhook_tenant_concurrency),
        # Faults here are random, not outages: a breaker that opens on a run of them rests for seconds.
        "TASKCAST_WEBHOOK_BREAKER_COOL_DOWN": str(config.breaker_cool_down_s),
        "TASKCAST_WEBHOOK_BREAKER_MAX_COOL_DOWN": str(4 * config.breaker_cool_down_s),
    }
    with tempfile.TemporaryDirectory(prefix="taskcast-chaos-") as folder, \
            flaky_receiver(tenant["webhook_secret"], config.fault_rate, config.webhook_timeout_s + 1.0, config.seed,
                          config.max_faults_per_id) as receiver:
        environment["TASKCAST_LOCAL_STATE_DIR"] = folder
        site = poison_site(Path(folder), config.poison_percent)
        # The stack's own process (functions imported in-process) and, where functions run in processes of
        # their own, each of those: both find the poisoner's sitecustomize on their path.
        environment["TASKCAST_LOCAL_FUNCTION_PYTHONPATH"] = os.pathsep.join([str(site), str(PROJECT_ROOT)])
        with running_stack(tenants=TENANT, environment=environment, python_path=[site, PROJECT_ROOT],
                           log_level="WARNING") as stack:
            chooser = random.Random(config.seed)
            drops = [chooser.random() < config.drop_rate for _ in range(config.tasks)]
            created, done = threading.Semaphore(0), threading.Event()
            restarter = threading.Thread(target=_restart_pollers, name="chaos-restarts",
                                         args=(stack, config, created, done, report, Path(folder)), daemon=True)
            restarter.start()

            def one(index: int) -> ClientLog:
                created.release()
                return _follow(stack, tenant["api_key"], receiver.url(), drops[index], config)

            with ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="chaos-client") as pool:
                logs = list(pool.map(one, range(config.tasks)))
            done.set()
            restarter.join(timeout=180)
            report.tasks = len(logs)
            ids = {log.task_id for log in logs if log.task_id}
            finals = {log.task_id: max((m["version"] for m in log.messages if m["status"] in TERMINAL), default=0)
                      for log in logs}

            def settled(hits: list[Any]) -> bool:
                ok = {hit.webhook_id for hit in hits if hit.answer.kind == "ok"}
                return all(f"{task_id}.{version}" in ok for task_id in ids
                           for version in range(1, finals.get(task_id, 0) + 1))

            receiver.wait_until(settled, None, config.settle_timeout_s)
            report.webhook_dead_lettered = _dead_letters(stack)
            report.stream_batches_given_up = _dead_letters(stack, "StreamFailureQueue")
            report.stream_positions.append(_position(Path(folder)))
            report.poison_raised = stack.output().count("injected poison record")
            report.function_timeouts = dict(Counter(TIMED_OUT.findall(stack.output())))
            _check(logs, receiver, report, config)
    if report.webhook_dead_lettered:
        report.violations.append(f"{report.webhook_dead_lettered} webhooks dead-lettered")
    if report.stream_batches_given_up:
        report.violations.append(f"{report.stream_batches_given_up} stream batches given up (StreamFailureQueue)")
    report.seconds = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n")[0])
    defaults = ChaosConfig()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--output", type=Path, help="also write the report as JSON here")
    args = vars(parser.parse_args(argv))
    output = args.pop("output")
    report = run_chaos(ChaosConfig(**args))
    print(report.as_json())
    if output:
        output.write_text(report.as_json())
    return 0 if not report.violations else 1
