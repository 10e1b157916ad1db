"""A real webhook receiver on 127.0.0.1 that verifies EVERY request with ``standardwebhooks``.

Each request is checked with ``Webhook(secret).verify(body, headers)`` for every secret given (so a
rotation test can require both the old and the new secret to verify); a request that does not verify is
recorded in ``failures`` — tests assert that list is empty (``assert_all_verified``).

Answers are scripted per path, consumed in order, then ``200``: a status with headers (``410``,
``302`` + ``Location``, ``429`` + ``Retry-After``, ...) or ``Answer.slow()``, which holds the request
until the receiver stops — longer than any sender timeout used in the tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # never answer in time: wait until the receiver stops

    @classmethod
    def slow(cls) -> Answer:
        return cls(hold=True)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, secrets: str | Iterable[str], host: str = "127.0.0.1") -> None:
        self.secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        self.received: list[Received] = []
        self.failures: list[str] = []
        self._scripts: dict[str, list[Answer]] = {}
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
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def script(self, path: str, *answers: Answer) -> None:
        with self._changed:
            self._scripts[path] = list(answers)

    def requests_for(self, path: str = "/hooks") -> list[Received]:
        with self._changed:
            return [request for request in self.received if request.path == path]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], path: str = "/hooks", timeout: float = 5.0
    ) -> list[Received]:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self.requests_for(path)), timeout=timeout):
                raise AssertionError(f"webhooks on {path} never matched: {self.requests_for(path)}")
            return self.requests_for(path)

    def wait_for_count(self, count: int, path: str = "/hooks", timeout: float = 5.0) -> list[Received]:
        return self.wait_for(lambda requests: len(requests) >= count, path, timeout)

    def assert_all_verified(self) -> None:
        assert not self.failures, f"webhooks that did not verify: {self.failures}"

    def _verify(self, body: bytes, headers: dict[str, str]) -> None:
        for index, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError as error:
                self.failures.append(f"{headers.get('webhook-id')}: secret #{index}: {error}")

    def _next_answer(self, path: str) -> Answer:
        with self._changed:
            script = self._scripts.get(path) or []
            return script.pop(0) if script else Answer()

    def _record(self, request: Received) -> None:
        with self._changed:
            self.received.append(request)
            self._changed.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {key.lower(): value for key, value in self.headers.items()}
                receiver._verify(body, headers)
                answer = receiver._next_answer(self.path)
                if answer.hold:
                    receiver._record(Received(self.path, headers, body, None))
                    receiver._stopping.wait(timeout=30)
                    return
                receiver._record(Received(self.path, headers, body, answer.status))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        return Handler
