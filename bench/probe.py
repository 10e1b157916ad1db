"""A probe on every AWS call a process makes: which operation, when it started and ended, which task ids
it names. The local stack runs as a child process; the benchmark starts it with ``probe_site`` on its
``PYTHONPATH``, whose ``sitecustomize`` installs this probe there and appends one JSON line per call to
a file of its own (``TASKCAST_BENCH_PROBE_DIR``). The benchmark's own calls are probed in its process.
So the probe sees the handlers' DynamoDB reads and writes and their ``@connections`` posts as they happen.

It is how the benchmark counts DynamoDB reads per task (every GetItem/Query/... whose key names the
task, at the boto3 boundary, which is where AWS would bill them) and how it splits fan-out time into
stream poll, subscriber query and posts, from timestamps rather than guesses.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from botocore.client import BaseClient

READ_OPERATIONS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    start: float
    end: float
    names: frozenset[str]  # string values found in keys, conditions, connection ids, posted task ids
    table: str = ""
    state_writes: tuple[tuple[str, str, int], ...] = ()  # (task id, status, version) of STATE items written
    posted: tuple[str, int] | None = None  # (task id, version) of a task.status frame posted to a connection


class CallProbe:
    """Wraps ``BaseClient._make_api_call`` while installed, and the push functions' lean
    ``ConnectionsClient.post_to_connection`` (its posts bypass boto3); use as a context manager.

    Calls go to ``sink`` (default: kept in ``calls``).
    """

    def __init__(self, sink: Callable[[Call], None] | None = None) -> None:
        self.calls: list[Call] = []
        self.sink = sink or self.calls.append  # list.append is atomic under the GIL
        self._original: Any = None
        self._original_post: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> CallProbe:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def install(self) -> None:
        with self._lock:
            if self._original is not None:
                return
            original = BaseClient._make_api_call
            probe = self

            def _make_api_call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
                start = time.time()
                try:
                    return original(client, operation_name, api_params)
                finally:
                    probe._record(client, operation_name, api_params, start, time.time())

            self._original = original
            BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]
            self._install_lean_posts()

    def _install_lean_posts(self) -> None:
        try:
            from taskcast.push.connections_client import ConnectionsClient
        except ImportError:  # a process without the package: only boto3's calls are probed
            return
        original = ConnectionsClient.post_to_connection
        probe = self

        def post_to_connection(client: Any, **params: Any) -> Any:
            start = time.time()
            try:
                return original(client, **params)
            finally:
                probe._record_call("apigatewaymanagementapi", "PostToConnection", params, start, time.time())

        self._original_post = (ConnectionsClient, original)
        ConnectionsClient.post_to_connection = post_to_connection  # type: ignore[method-assign]

    def uninstall(self) -> None:
        with self._lock:
            if self._original is not None:
                BaseClient._make_api_call = self._original  # type: ignore[method-assign]
                self._original = None
            if self._original_post is not None:
                cls, original = self._original_post
                cls.post_to_connection = original
                self._original_post = None

    def since(self, start: float) -> list[Call]:
        return [call for call in self.calls if call.start >= start]

    def _record(self, client: BaseClient, operation: str, params: dict[str, Any], start: float, end: float) -> None:
        try:
            service = client.meta.service_model.service_name
        except Exception:  # noqa: BLE001 - a probe must never break the call it watches
            return
        self._record_call(service, operation, params, start, end)

    def _record_call(self, service: str, operation: str, params: dict[str, Any], start: float, end: float) -> None:
        try:
            call = Call(
                service=service,
                operation=operation,
                start=start,
                end=end,
                names=frozenset(_strings(params)),
                table=str(params.get("TableName", "")),
                state_writes=tuple(_state_writes(operation, params)),
                posted=_posted(operation, params),
            )
        except Exception:  # noqa: BLE001 - a probe must never break the call it watches
            return
        self.sink(call)


class FileSink:
    """One JSON line per call, appended to ``<folder>/calls-<pid>.jsonl`` (line-buffered, so readers see
    every finished call)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._file = open(folder / f"calls-{os.getpid()}.jsonl", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def __call__(self, call: Call) -> None:
        data = asdict(call)
        data["names"] = sorted(call.names)
        line = json.dumps(data, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")


def install_in_child(folder: str) -> CallProbe:
    """What ``probe_site/sitecustomize.py`` runs in the stack's process."""
    probe = CallProbe(FileSink(Path(folder)))
    probe.install()
    return probe


class Probes:
    """The calls of this process and of the stack's, read back (incrementally) from the child's files."""

    def __init__(self, local: CallProbe, folder: Path) -> None:
        self.local = local
        self.folder = folder
        self._read: list[Call] = []
        self._offsets: dict[Path, int] = {}

    @staticmethod
    def mark() -> float:
        return time.time()

    def since(self, start: float) -> list[Call]:
        self._read_new_lines()
        calls = self.local.since(start) + [call for call in self._read if call.start >= start]
        calls.sort(key=lambda call: call.start)
        return calls

    def _read_new_lines(self) -> None:
        for path in sorted(self.folder.glob("calls-*.jsonl")):
            with open(path, "rb") as lines:
                lines.seek(self._offsets.get(path, 0))
                chunk = lines.read()
            complete = chunk.rfind(b"\n") + 1  # a line still being written waits for the next read
            self._offsets[path] = self._offsets.get(path, 0) + complete
            for line in chunk[:complete].decode("utf-8", errors="replace").splitlines():
                call = _call_from_line(line)
                if call is not None:
                    self._read.append(call)


BACKGROUND_OPERATIONS = frozenset({"GetRecords", "GetShardIterator", "DescribeStream", "ReceiveMessage"})


async def wait_until_quiet(probes: Probes, quiet_s: float = 1.0, timeout_s: float = 120.0) -> float:
    """Wait until the stack has made no AWS call but its pollers' for ``quiet_s``; the seconds waited.

    A part that leaves work behind (a backlog of stream records, handlers still running) would
    otherwise load the next part's measurements.
    """
    import asyncio

    started = time.time()
    while time.time() - started < timeout_s:
        recent = probes.since(time.time() - quiet_s)
        if not any(call.operation not in BACKGROUND_OPERATIONS for call in recent):
            break
        await asyncio.sleep(quiet_s / 2)
    return time.time() - started


def _call_from_line(line: str) -> Call | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None  # a line still being written
    return Call(
        service=data["service"],
        operation=data["operation"],
        start=data["start"],
        end=data["end"],
        names=frozenset(data["names"]),
        table=data.get("table", ""),
        state_writes=tuple(tuple(item) for item in data.get("state_writes", [])),  # type: ignore[misc]
        posted=tuple(data["posted"]) if data.get("posted") else None,  # type: ignore[arg-type]
    )


def is_read(call: Call) -> bool:
    return call.service == "dynamodb" and call.operation in READ_OPERATIONS


def reads_by_task(calls: list[Call], task_ids: set[str]) -> dict[str, int]:
    counts = dict.fromkeys(task_ids, 0)
    for call in calls:
        if is_read(call):
            for name in call.names & task_ids:
                counts[name] += 1
    return counts


def _strings(value: Any) -> Iterator[str]:
    """Every DynamoDB string attribute value and plain string id in a request's parameters."""
    if isinstance(value, dict):
        if set(value) == {"S"} and isinstance(value["S"], str):
            yield value["S"]
            return
        for key, item in value.items():
            if key in {"ConnectionId", "FunctionName"} and isinstance(item, str):
                yield item
            elif key == "Data":
                posted = _frame_task(item)
                if posted:
                    yield posted[0]
            else:
                yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _state_writes(operation: str, params: dict[str, Any]) -> Iterator[tuple[str, str, int]]:
    items: list[dict[str, Any]] = []
    if operation == "TransactWriteItems":
        items = [entry["Put"]["Item"] for entry in params.get("TransactItems", []) if "Put" in entry]
    elif operation == "PutItem":
        items = [params.get("Item", {})]
    for item in items:
        if item.get("sk", {}).get("S") == "STATE" and "version" in item:
            yield item["pk"]["S"], item.get("status", {}).get("S", ""), int(item["version"]["N"])


def _posted(operation: str, params: dict[str, Any]) -> tuple[str, int] | None:
    if operation != "PostToConnection":
        return None
    return _frame_task(params.get("Data"))


def _frame_task(data: Any) -> tuple[str, int] | None:
    try:
        message = json.loads(data)
    except (TypeError, ValueError):
        return None
    if isinstance(message, dict) and message.get("type") == "task.status":
        return str(message.get("task_id")), int(message.get("version", 0))
    return None
