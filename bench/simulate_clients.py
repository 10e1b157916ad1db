"""The simulation's other fake AWS clients, and the seam they go in by.

- ``FakeConnections``: ``apigatewaymanagementapi``. ``post_to_connection`` waits a drawn latency, then
  takes the frame as delivered: it counts frames per connection and checks that each connection sees
  its task's versions in order, without gaps (a version going backwards or skipping one is a
  violation; the same version again at once is a duplicate, counted apart). An unknown connection answers
  ``GoneException`` (410) as API Gateway does.
- ``FakeQueues``: ``sqs`` (``send_message``, ``send_message_batch``), counting messages.
- ``fake_boto3``: while active, every ``boto3`` client built in the process (``boto3.client``,
  ``Session().client``) is the fake for its service, whatever code builds it; a service without a fake
  raises ``NotImplementedError``. Cached clients of ``taskcast`` modules are forgotten on the way in and
  out, so the consumer code builds its clients inside the seam.
- ``fake_connections_endpoint``: the same ``FakeConnections`` behind the ``@connections`` HTTP API, for
  a poster that signs and sends its own requests through urllib3 (``requests`` included) instead of a
  boto3 client: ``POST {stage}/@connections/{id}`` answers 200, or 410 for a closed connection.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3.session
import urllib3
from botocore.exceptions import ClientError
from urllib3.connectionpool import HTTPConnectionPool

from bench.simulate_dynamodb import client_error
from bench.simulate_latency import Latency, Wire

_MAX_VIOLATIONS_KEPT = 20


@dataclass
class ConnectionLog:
    task_id: str
    versions: list[int] = field(default_factory=list)  # every frame's version, in arrival order

    @property
    def highest(self) -> int:
        return max(self.versions, default=0)


class FakeConnections:
    """``apigatewaymanagementapi``: the frames every connection received, checked as they arrive.

    ``written_at(task_id, version)`` is when the change entered the stream (for the post lag).
    """

    def __init__(
        self,
        latency: Latency,
        written_at: Callable[[str, int], float | None],
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wire = Wire(latency, seed)
        self._written_at = written_at
        self._clock = clock
        self._lock = threading.Lock()
        self.connections: dict[str, ConnectionLog] = {}
        self.lags_s: list[float] = []
        self.duplicates = 0
        self.violations = 0
        self.violation_examples: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise NotImplementedError(f"the simulated apigatewaymanagementapi client does not implement {name}")

    def open(self, connection_id: str, task_id: str) -> None:
        with self._lock:
            self.connections[connection_id] = ConnectionLog(task_id)

    def post_to_connection(self, **request: Any) -> dict[str, Any]:
        self.wire.call("PostToConnection")
        connection_id = request["ConnectionId"]
        data = request["Data"]
        message = json.loads(data.decode() if isinstance(data, bytes | bytearray) else data)
        arrived = self._clock()
        with self._lock:
            log = self.connections.get(connection_id)
            if log is None:
                raise client_error("PostToConnection", "GoneException", "Gone", status=410)
            if message.get("type") == "task.status":
                self._check(connection_id, log, message, arrived)
        return {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _check(self, connection_id: str, log: ConnectionLog, message: Mapping[str, Any], arrived: float) -> None:
        version = int(message["version"])
        if message.get("task_id") != log.task_id:
            self._violation(f"{connection_id}: a frame of task {message.get('task_id')} (subscribed to {log.task_id})")
        last = log.highest
        first_time = version > last
        if version == last:
            self.duplicates += 1
        elif version < last:
            self._violation(f"{connection_id}: v{version} after v{last} (backwards)")
        elif version > last + 1:
            self._violation(f"{connection_id}: v{version} after v{last} (v{last + 1} missing)")
        log.versions.append(version)
        written = self._written_at(log.task_id, version) if first_time else None
        if written is not None:
            self.lags_s.append(arrived - written)

    def _violation(self, text: str) -> None:
        self.violations += 1
        if len(self.violation_examples) < _MAX_VIOLATIONS_KEPT:
            self.violation_examples.append(text)

    def missing(self, completed: Mapping[str, int]) -> list[str]:
        """Connections whose task has a completed (checkpointed) version they never received."""
        with self._lock:
            return [
                f"{connection_id}: v{completed[log.task_id]} completed, v{log.highest} received"
                for connection_id, log in self.connections.items()
                if log.highest < completed.get(log.task_id, 0)
            ]

    def frames(self) -> int:
        with self._lock:
            return sum(len(log.versions) for log in self.connections.values())


class FakeQueues:
    """``sqs``: messages are counted per queue and dropped (the simulation measures the hand-off only)."""

    def __init__(self, latency: Latency, seed: int | None = None) -> None:
        self.wire = Wire(latency, seed)
        self.messages: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise NotImplementedError(f"the simulated sqs client does not implement {name}")

    def send_message(self, **request: Any) -> dict[str, Any]:
        self.wire.call("SendMessage")
        with self._lock:
            self.messages[request["QueueUrl"]] += 1
        return {"MessageId": str(uuid.uuid4())}

    def send_message_batch(self, **request: Any) -> dict[str, Any]:
        self.wire.call("SendMessageBatch")
        entries = request["Entries"]
        if not 1 <= len(entries) <= 10:
            raise client_error("SendMessageBatch", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "1 to 10")
        with self._lock:
            self.messages[request["QueueUrl"]] += len(entries)
        return {"Successful": [{"Id": entry["Id"], "MessageId": str(uuid.uuid4())} for entry in entries], "Failed": []}


def _forget_cached_clients() -> None:
    """Clear the ``functools.cache`` of every client factory in the loaded ``taskcast`` modules."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "taskcast" or name.startswith("taskcast.")):
            continue
        for attribute, value in list(vars(module).items()):
            if "client" in attribute and callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


@contextmanager
def fake_boto3(fakes: Mapping[str, Any]) -> Iterator[None]:
    """Every boto3 client built while active is ``fakes[service_name]``."""
    original = boto3.session.Session.client

    def client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if service_name not in fakes:
            raise NotImplementedError(f"the simulation has no fake {service_name} client")
        return fakes[service_name]

    _forget_cached_clients()
    boto3.session.Session.client = client
    try:
        yield
    finally:
        boto3.session.Session.client = original
        _forget_cached_clients()


def calls_by_operation(*wires: Wire) -> dict[str, int]:
    merged: dict[str, int] = defaultdict(int)
    for wire in wires:
        for operation, count in wire.calls.items():
            merged[operation] += count
    return dict(sorted(merged.items()))


_CONNECTIONS_PATH = "/@connections/"


@contextmanager
def fake_connections_endpoint(connections: FakeConnections, endpoint_url: str) -> Iterator[None]:
    """Requests through urllib3 to ``endpoint_url``'s host go to ``connections``; others are untouched.

    A signer needs credentials to sign with: made-up ones are set for the run when none are (nothing
    leaves the process)."""
    host = urlsplit(endpoint_url).hostname
    original = HTTPConnectionPool.urlopen

    def urlopen(pool: HTTPConnectionPool, method: str, url: str, body: Any = None, *args: Any, **kwargs: Any) -> Any:
        if pool.host != host:
            return original(pool, method, url, body, *args, **kwargs)
        path = urlsplit(url).path
        if method != "POST" or _CONNECTIONS_PATH not in path:
            raise NotImplementedError(f"the simulated @connections endpoint does not answer {method} {path}")
        connection_id = unquote(path.split(_CONNECTIONS_PATH, 1)[1])
        data = body if isinstance(body, bytes) else (body or "").encode()
        try:
            connections.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as error:
            status = int(error.response["ResponseMetadata"]["HTTPStatusCode"])
            message = json.dumps({"message": error.response["Error"]["Message"]}).encode()
            return urllib3.HTTPResponse(body=message, status=status, headers={"x-amzn-ErrorType": "GoneException"},
                                        request_method=method, request_url=url, preload_content=True)
        return urllib3.HTTPResponse(body=b"", status=200, headers={}, request_method=method, request_url=url,
                                    preload_content=True)

    made_up = {"AWS_ACCESS_KEY_ID": "simulated", "AWS_SECRET_ACCESS_KEY": "simulated"}
    missing = {name: value for name, value in made_up.items() if not os.environ.get(name)}
    os.environ.update(missing)
    HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        HTTPConnectionPool.urlopen = original  # type: ignore[method-assign]
        for name in missing:
            os.environ.pop(name, None)
