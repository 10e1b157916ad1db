"""A webhook receiver on 127.0.0.1 for end-to-end tests: every POST is verified with
``standardwebhooks`` as it arrives and queued (verified payload, headers) for the test to take."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


class VerifyingReceiver:
    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.deliveries: queue.Queue[tuple[dict[str, Any], dict[str, str]]] = queue.Queue()
        self.rejected: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {key.lower(): value for key, value in self.headers.items()}
                try:
                    payload = receiver.webhook.verify(body, headers)
                except Exception as error:  # noqa: BLE001 - recorded for the test to fail on
                    receiver.rejected.append(f"{type(error).__name__}: {error}")
                    self.send_response(400)
                else:
                    receiver.deliveries.put((payload, headers))
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def __enter__(self) -> VerifyingReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def take(self, timeout_s: float = 15.0) -> tuple[dict[str, Any], dict[str, str]]:
        return self.deliveries.get(timeout=timeout_s)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
