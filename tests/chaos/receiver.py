"""A webhook receiver on 127.0.0.1 that misbehaves on purpose: a share of requests answer 500, time out
(held past the sender's timeout) or have their connection reset. Every request is verified with
``standardwebhooks`` and recorded, so the suite can count deliveries, retries and duplicates."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

FAULTS = ("http_500", "timeout", "reset")


@dataclass(frozen=True)
class Hit:
    webhook_id: str
    task_id: str
    version: int
    status: str
    data: dict[str, Any]
    outcome: str  # "ok" or one of FAULTS
    verified: bool


class FlakyReceiver:
    def __init__(self, secret: str, fault_rate: float, hold_s: float, seed: int = 7,
                 max_faults_per_id: int = 4) -> None:
        self.webhook = Webhook(secret)
        self.fault_rate = fault_rate
        self.hold_s = hold_s
        self.max_faults_per_id = max_faults_per_id
        self.hits: list[Hit] = []
        self._faults_by_id: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="flaky-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks"

    def __enter__(self) -> FlakyReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def wait_until(self, predicate: Callable[[list[Hit]], bool], timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.hits), timeout=timeout_s)

    def _choose(self, webhook_id: str) -> str:
        # A fault at the configured rate, but never more than max_faults_per_id in a row for one delivery,
        # so that the retry schedule (longer than that) always ends in a delivery and nothing is dead-lettered.
        with self._changed:
            if self._faults_by_id[webhook_id] >= self.max_faults_per_id or self._random.random() >= self.fault_rate:
                return "ok"
            self._faults_by_id[webhook_id] += 1
            return self._random.choice(FAULTS)

    def _record(self, hit: Hit) -> None:
        with self._changed:
            self.hits.append(hit)
            self._changed.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {key.lower(): value for key, value in self.headers.items()}
                try:
                    receiver.webhook.verify(body, headers)
                    verified = True
                except Exception:  # noqa: BLE001 - any verification error counts as unverified
                    verified = False
                data = json.loads(body).get("data", {})
                webhook_id = headers.get("webhook-id", "")
                outcome = receiver._choose(webhook_id)
                receiver._record(Hit(webhook_id, data.get("task_id", ""), int(data.get("version", 0)),
                                     data.get("status", ""), data, outcome, verified))
                if outcome == "timeout":
                    receiver._stopping.wait(receiver.hold_s)  # the sender gives up first
                    self.close_connection = True
                    return
                if outcome == "reset":
                    # SO_LINGER 0 then close: the sender sees a TCP reset instead of an answer.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(500 if outcome == "http_500" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def finish(self) -> None:
                with contextlib.suppress(OSError):  # the connection was reset on purpose
                    super().finish()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        return Handler
