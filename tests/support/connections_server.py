"""A small real ``@connections`` API on 127.0.0.1, reachable through boto3's ``apigatewaymanagementapi``
client unchanged (``endpoint_url=server.url``).

- ``POST /@connections/{id}``: records the frame; ``410 GoneException`` for an unknown id; ``429
  LimitExceededException`` while a throttle knob is set; ``413`` over 128 KB.
- ``GET /@connections/{id}``: the connection's info; ``DELETE``: closes it (``204``).
- ``GET /@connections``: the ids of the live connections (the local stack's extension).

Any path prefix before ``/@connections`` is accepted, as a stage name would be on AWS.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

MAX_FRAME_BYTES = 128 * 1024
_PATH = re.compile(r"^(?:/[^/]+)*?/@connections(?:/(?P<id>[^/]+))?/?$")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Connection:
    id: str
    connected_at: str = field(default_factory=_now)
    last_active_at: str = field(default_factory=_now)
    frames: list[bytes] = field(default_factory=list)
    throttle_left: int = 0
    fail_left: int = 0


class ConnectionsServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._changed = threading.Condition()
        self._connections: dict[str, Connection] = {}
        # Frames of closed connections stay readable for assertions.
        self._closed_frames: dict[str, list[bytes]] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, connection id, status answered)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="connections-server", daemon=True)

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ConnectionsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ConnectionsServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ knobs and inspection
    def connect(self, connection_id: str | None = None) -> str:
        connection_id = connection_id or uuid.uuid4().hex[:12] + "="
        with self._changed:
            self._connections[connection_id] = Connection(connection_id)
            self._changed.notify_all()
        return connection_id

    def disconnect(self, connection_id: str) -> None:
        with self._changed:
            connection = self._connections.pop(connection_id, None)
            if connection is not None:
                self._closed_frames[connection_id] = connection.frames
            self._changed.notify_all()

    def throttle(self, connection_id: str, times: int) -> None:
        """Answer the next ``times`` posts to this connection with 429 LimitExceededException."""
        with self._changed:
            self._connections[connection_id].throttle_left = times

    def fail(self, connection_id: str, times: int) -> None:
        """Answer the next ``times`` posts to this connection with 500."""
        with self._changed:
            self._connections[connection_id].fail_left = times

    def live(self) -> list[str]:
        with self._changed:
            return list(self._connections)

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        with self._changed:
            connection = self._connections.get(connection_id)
            raw = list(connection.frames) if connection else list(self._closed_frames.get(connection_id, ()))
        return [json.loads(data) for data in raw]

    def wait_for(
        self,
        connection_id: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Block until the connection's frames satisfy ``predicate``; AssertionError after ``timeout``."""

        def satisfied() -> bool:
            return predicate(self.frames(connection_id))

        with self._changed:
            if not self._changed.wait_for(satisfied, timeout=timeout):
                raise AssertionError(f"frames of {connection_id} never matched: {self.frames(connection_id)}")
        return self.frames(connection_id)

    def wait_for_count(self, connection_id: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return self.wait_for(connection_id, lambda frames: len(frames) >= count, timeout)

    # ------------------------------------------------------------------ HTTP
    def _answer(self, method: str, connection_id: str | None, body: bytes) -> tuple[int, str | None, Any]:
        """(status, error type, JSON body) for one request."""
        with self._changed:
            if connection_id is None:
                if method == "GET":
                    return 200, None, {"connections": list(self._connections)}
                return 404, "NotFoundException", {"message": "Not Found"}
            connection = self._connections.get(connection_id)
            if connection is None:
                return 410, "GoneException", {"message": None}
            if method == "GET":
                return 200, None, {
                    "connectedAt": connection.connected_at,
                    "lastActiveAt": connection.last_active_at,
                    "identity": {"sourceIp": "127.0.0.1", "userAgent": "test"},
                }
            if method == "DELETE":
                self._closed_frames[connection_id] = connection.frames
                del self._connections[connection_id]
                self._changed.notify_all()
                return 204, None, None
            if connection.throttle_left > 0:
                connection.throttle_left -= 1
                return 429, "LimitExceededException", {"message": "Too Many Requests"}
            if connection.fail_left > 0:
                connection.fail_left -= 1
                return 500, "InternalServerError", {"message": "Internal server error"}
            if len(body) > MAX_FRAME_BYTES:
                return 413, "PayloadTooLargeException", {"message": "Message too long"}
            connection.frames.append(body)
            connection.last_active_at = _now()
            self._changed.notify_all()
            return 200, None, None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                match = _PATH.match(urlsplit(self.path).path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if match is None or self.command not in {"GET", "POST", "DELETE"}:
                    status, error, payload = 404, "NotFoundException", {"message": "Not Found"}
                    connection_id = ""
                else:
                    connection_id = unquote(match.group("id")) if match.group("id") else None
                    status, error, payload = server._answer(self.command, connection_id, body)
                server.requests.append((self.command, connection_id or "", status))
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        return Handler
