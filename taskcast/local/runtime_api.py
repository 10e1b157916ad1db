"""Lambda's Runtime API for one execution environment: the HTTP endpoint that a function's runtime
interface client (``awslambdaric``) polls for work and answers to.

    GET  /2018-06-01/runtime/invocation/next           blocks until an invocation is handed over
    POST /2018-06-01/runtime/invocation/{id}/response  the handler's answer
    POST /2018-06-01/runtime/invocation/{id}/error     the handler's error object
    POST /2018-06-01/runtime/init/error                the init phase failed (import error, ...)

Every ``next`` answer carries the headers the real Runtime API sends (request id, deadline, function ARN,
trace id, and client context / Cognito identity when present): awslambdaric's native client crashes on
a ``next`` without a trace id. Each environment gets a server of its own, because
``AWS_LAMBDA_RUNTIME_API`` is a bare ``host:port`` and the process it serves is the only thing that
tells two environments apart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskcast.local.httpserver import HTTPService, LocalHTTPServer, QuietHandler

log = logging.getLogger("taskcast.local")

RUNTIME_PREFIX = "/2018-06-01/runtime"
_INVOCATION_PATH = re.compile(rf"^{RUNTIME_PREFIX}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # Lambda's synchronous response limit
_POLL_S = 0.5  # how often a blocked ``next`` looks whether its environment is going away


def trace_id() -> str:
    """An X-Ray trace header as Lambda passes it (``Root=1-<epoch hex>-<24 hex>;Parent=...;Sampled=0``)."""
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


@dataclass
class Handover:
    """One invocation handed to an environment, and how it ended."""

    request_id: str
    body: bytes
    deadline_epoch_ms: int
    function_arn: str
    trace_id: str = field(default_factory=trace_id)
    client_context: str | None = None
    cognito_identity: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0  # monotonic time the runtime took it
    response: bytes | None = None
    error: dict[str, Any] | None = None

    def headers(self) -> list[tuple[str, str]]:
        headers = [
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", self.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(self.deadline_epoch_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
            ("Lambda-Runtime-Trace-Id", self.trace_id),
        ]
        if self.client_context is not None:
            headers.append(("Lambda-Runtime-Client-Context", self.client_context))
        if self.cognito_identity is not None:
            headers.append(("Lambda-Runtime-Cognito-Identity", self.cognito_identity))
        return headers

    def finish(self, *, response: bytes | None = None, error: dict[str, Any] | None = None) -> bool:
        """Record the outcome once; False when it had already ended (a late answer after a timeout)."""
        if self.done.is_set():
            return False
        self.response, self.error = response, error
        self.done.set()
        return True


class RuntimeApi(HTTPService):
    """The Runtime API of one environment. ``ready`` is set by the runtime's first ``next`` (its init
    phase is over); ``init_error`` holds what it reported through ``/init/error``; ``settled`` is set by
    either."""

    def __init__(self, name: str, host: str = "127.0.0.1", settled: threading.Event | None = None) -> None:
        self.name = name
        self.ready = threading.Event()
        self.settled = settled or threading.Event()  # set on ready and on an init error
        self.init_error: dict[str, Any] | None = None
        self.current: Handover | None = None
        self.closing = threading.Event()
        self._handovers: queue.Queue[Handover] = queue.Queue()
        self._lock = threading.Lock()
        self.server = LocalHTTPServer(_RuntimeHandler, self, host, 0, name=f"runtime-api {name}")

    @property
    def address(self) -> str:
        """What ``AWS_LAMBDA_RUNTIME_API`` holds: ``host:port``."""
        return f"{self.server.host}:{self.server.port}"

    def hand_over(self, handover: Handover) -> None:
        self._handovers.put(handover)

    def stop(self) -> None:
        self.closing.set()
        super().stop()

    # -- what the handler calls
    def next_handover(self) -> Handover | None:
        self.ready.set()
        self.settled.set()
        while not self.closing.is_set():
            try:
                handover = self._handovers.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if handover.done.is_set():
                continue  # given up on before the runtime took it
            with self._lock:
                self.current = handover
            handover.started = time.monotonic()
            return handover
        return None

    def answer(self, request_id: str, *, response: bytes | None = None, error: dict[str, Any] | None = None) -> bool:
        with self._lock:
            handover = self.current
            if handover is None or handover.request_id != request_id:
                return False
            self.current = None
        handover.finish(response=response, error=error)
        return True

    def fail_all(self, error_for: Callable[[str], dict[str, Any]]) -> None:
        """The runtime is gone: end the invocation it holds and every one still waiting for it."""
        with self._lock:
            pending, self.current = [self.current] if self.current else [], None
        while True:
            try:
                pending.append(self._handovers.get_nowait())
            except queue.Empty:
                break
        for handover in pending:
            handover.finish(error=error_for(handover.request_id))

    def report_init_error(self, error: dict[str, Any]) -> None:
        self.init_error = error
        self.settled.set()


def error_object(body: bytes, error_type: str | None) -> dict[str, Any]:
    """The error object a runtime posted, made whole when it is not JSON (Lambda does the same)."""
    try:
        error = json.loads(body) if body else {}
    except ValueError:
        error = {"errorMessage": body.decode("utf-8", "replace")}
    if not isinstance(error, dict):
        error = {"errorMessage": str(error)}
    if error_type and not error.get("errorType"):
        error["errorType"] = error_type
    return error


class _RuntimeHandler(QuietHandler):
    server_version = "taskcast-local-runtime-api"

    def handle(self) -> None:
        # A runtime that exits right after posting (an init error) may not read our answer.
        with contextlib.suppress(ConnectionError):
            super().handle()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        api: RuntimeApi = self.server.owner  # type: ignore[attr-defined]
        if self.path.split("?", 1)[0] != f"{RUNTIME_PREFIX}/invocation/next":
            self.send_json(404, {"errorMessage": f"no route for GET {self.path}", "errorType": "NotFound"})
            return
        handover = api.next_handover()
        if handover is None:
            self.close_connection = True
            self.send_json(410, {"errorMessage": "the environment is shutting down", "errorType": "Shutdown"})
            return
        self.send(200, handover.body, handover.headers())

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        api: RuntimeApi = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        body = self.read_body(MAX_RESPONSE_BYTES)
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        if path == f"{RUNTIME_PREFIX}/init/error":
            api.report_init_error(error_object(body or b"", error_type))
            self.send_json(202, {"status": "OK"})
            return
        match = _INVOCATION_PATH.match(path)
        if match is None:
            self.send_json(404, {"errorMessage": f"no route for POST {path}", "errorType": "NotFound"})
            return
        request_id = match.group("id")
        if body is None:  # over 6 MB: Lambda fails the invocation, the runtime goes on
            error = {"errorMessage": f"Response payload size exceeded maximum allowed payload size "
                                     f"({MAX_RESPONSE_BYTES} bytes).", "errorType": "Function.ResponseSizeTooLarge"}
            api.answer(request_id, error=error)
            self.send_json(413, {"errorMessage": error["errorMessage"], "errorType": "RequestEntityTooLarge"})
            return
        if match.group("kind") == "response":
            known = api.answer(request_id, response=body)
        else:
            known = api.answer(request_id, error=error_object(body, error_type))
        if not known:
            self.send_json(400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
            return
        self.send_json(202, {"status": "OK"})
