"""The webhook receiver of the tests: a real server on 127.0.0.1 that verifies EVERY request with
``standardwebhooks`` (the library the contract names), records it, and answers as its policy says.

Each request is checked with ``Webhook(secret).verify(body, headers)`` for every secret given (so a
rotation test can require both the old and the new secret to verify); a request that does not verify is
recorded in ``failures`` — tests assert that list is empty (``assert_all_verified``).

What it answers comes from an answer policy (``answers=``): by default ``ScriptedAnswers``, per path,
consumed in order, then ``200``; the chaos suite passes one that injects faults. An ``Answer`` is a status
with headers (``410``, ``302`` + ``Location``, ``429`` + ``Retry-After``, ...), a hold (no answer in time),
or a connection reset.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

HOLD_S = 30.0  # longer than any sender timeout used in the tests


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold_s: float | None = None  # no answer: hold the request this long (or until the receiver stops)
    reset: bool = False  # no answer: reset the connection
    trickle_s: float | None = None  # answer 200, one byte of the status line and headers every trickle_s
    delay_s: float | None = None  # answer (``status``) after this long: a slow but healthy receiver
    kind: str = "ok"  # what the answer stands for, for reports ("ok", "http_500", "timeout", "reset", ...)

    @classmethod
    def slow(cls) -> Answer:
        return cls(hold_s=HOLD_S, kind="timeout")

    @classmethod
    def trickle(cls, every_s: float) -> Answer:
        return cls(trickle_s=every_s, kind="timeout")

    @property
    def answered(self) -> int | None:
        return None if self.hold_s is not None or self.reset or self.trickle_s is not None else self.status


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answer: Answer
    verified: bool
    at: float = 0.0  # time.time() when it arrived

    @property
    def answered(self) -> int | None:
        return self.answer.answered

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def data(self) -> dict[str, Any]:
        return self.payload.get("data") or {}

    @property
    def version(self) -> int:
        return int(self.data.get("version", 0))


class AnswerPolicy(Protocol):
    def answer(self, path: str, webhook_id: str) -> Answer: ...


class ScriptedAnswers:
    """Answers scripted per path, consumed in order, then ``200``."""

    def __init__(self) -> None:
        self._scripts: dict[str, list[Answer]] = {}
        self._lock = threading.Lock()

    def script(self, path: str, *answers: Answer) -> None:
        with self._lock:
            self._scripts[path] = list(answers)

    def answer(self, path: str, webhook_id: str) -> Answer:
        with self._lock:
            script = self._scripts.get(path) or []
            return script.pop(0) if script else Answer()


class WebhookReceiver:
    def __init__(self, secrets: str | Iterable[str], host: str = "127.0.0.1",
                 answers: AnswerPolicy | None = None) -> None:
        self.secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        self.answers = answers if answers is not None else ScriptedAnswers()
        self.received: list[Received] = []
        self.failures: list[str] = []
        self.in_flight = 0  # requests being answered (or held) right now
        self.max_in_flight = 0
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str = "/hooks") -> str:
        return self.base_url + path

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def script(self, path: str, *answers: Answer) -> None:
        assert isinstance(self.answers, ScriptedAnswers), "scripts need the default answer policy"
        self.answers.script(path, *answers)

    def requests_for(self, path: str | None = "/hooks") -> list[Received]:
        """The requests to ``path`` (None: to any path), in arrival order."""
        with self._changed:
            return [request for request in self.received if path is None or request.path == path]

    def wait_until(self, predicate: Callable[[list[Received]], bool], path: str | None = "/hooks",
                   timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.requests_for(path)), timeout=timeout)

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], path: str | None = "/hooks", timeout: float = 5.0
    ) -> list[Received]:
        if not self.wait_until(predicate, path, timeout):
            raise AssertionError(f"webhooks on {path} never matched: {self.requests_for(path)}")
        return self.requests_for(path)

    def wait_for_count(self, count: int, path: str | None = "/hooks", timeout: float = 5.0) -> list[Received]:
        return self.wait_for(lambda requests: len(requests) >= count, path, timeout)

    def assert_all_verified(self) -> None:
        assert not self.failures, f"webhooks that did not verify: {self.failures}"

    def _verify(self, body: bytes, headers: dict[str, str]) -> bool:
        verified = True
        for index, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except (WebhookVerificationError, ValueError) as error:
                verified = False
                with self._changed:
                    self.failures.append(f"{headers.get('webhook-id')}: secret #{index}: {error}")
        return verified

    def _record(self, request: Received) -> None:
        with self._changed:
            self.received.append(request)
            self._changed.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                with receiver._changed:
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                try:
                    self._answer()
                finally:
                    with receiver._changed:
                        receiver.in_flight -= 1
                        receiver._changed.notify_all()

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {key.lower(): value for key, value in self.headers.items()}
                verified = receiver._verify(body, headers)
                answer = receiver.answers.answer(self.path, headers.get("webhook-id", ""))
                receiver._record(Received(self.path, headers, body, answer, verified, time.time()))
                if answer.hold_s is not None:
                    receiver._stopping.wait(timeout=answer.hold_s)  # the sender gives up first
                    self.close_connection = True
                    return
                if answer.trickle_s is not None:
                    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Padding: " + b"." * 200 + b"\r\n\r\n"
                    self.close_connection = True
                    for byte in range(len(head)):
                        if receiver._stopping.wait(timeout=answer.trickle_s):
                            return
                        try:
                            self.wfile.write(head[byte : byte + 1])
                            self.wfile.flush()
                        except OSError:
                            return  # the sender gave up
                    return
                if answer.delay_s is not None and receiver._stopping.wait(timeout=answer.delay_s):
                    return
                if answer.reset:
                    # SO_LINGER 0 then close: the sender sees a TCP reset instead of an answer.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def finish(self) -> None:
                with contextlib.suppress(OSError):  # the connection was reset on purpose
                    super().finish()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        return Handler
