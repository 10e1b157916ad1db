"""A small threaded HTTP/1.1 server on 127.0.0.1 that the local gateways share: keep-alive
connections, a thread per connection, port 0 for a free port, quiet logs, a clean stop."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("taskcast.local")

MAX_DRAIN_BYTES = 64 * 1024 * 1024


class QuietHandler(BaseHTTPRequestHandler):
    """Request handler with keep-alive, no per-request stderr lines and small answer helpers."""

    protocol_version = "HTTP/1.1"
    server_version = "taskcast-local"
    sys_version = ""
    # An answer leaves as two writes (headers, body); with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms) on a keep-alive connection.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        log.debug("%s %s", self.address_string(), format % args)

    def read_body(self, limit: int | None = None) -> bytes | None:
        """The request body (Content-Length or chunked); None when it is larger than ``limit``.

        A refused body of known length is read and dropped (up to ``MAX_DRAIN_BYTES``), so that the
        client, still sending, reads the answer instead of a reset connection.
        """
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked(limit)
        length = int(self.headers.get("Content-Length") or 0)
        if limit is not None and length > limit:
            if length <= MAX_DRAIN_BYTES:
                self._drain(length)
            else:
                self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1024 * 1024))
            if not chunk:
                break
            length -= len(chunk)

    def _read_chunked(self, limit: int | None) -> bytes | None:
        body = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            if limit is not None and len(body) + size > limit:
                self.close_connection = True  # the rest of the chunks are not read
                return None
            body += self.rfile.read(size)
            self.rfile.readline()

    def send(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.send_response(status)
        sent = {name.lower() for name, _ in headers or []}
        for name, value in headers or []:
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        if content_type and "content-type" not in sent:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_json(self, status: int, data: Any, headers: list[tuple[str, str]] | None = None,
                  content_type: str = "application/json") -> None:
        self.send(status, json.dumps(data).encode(), headers, content_type)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class LocalHTTPServer:
    """Serves ``handler_class`` on ``host:port`` (0 = a free port) from a background thread; ``owner`` is
    the object its handlers serve (``self.server.owner``)."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler], owner: Any, host: str = "127.0.0.1",
                 port: int = 0, name: str = "http") -> None:
        self.handler_class = handler_class
        self.owner = owner
        self.host = host
        self.requested_port = port
        self.name = name
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} server is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._server = _Server((self.host, self.requested_port), self.handler_class)
        # Handlers reach the gateway that owns them as ``self.server.owner``.
        self._server.owner = self.owner  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{self.name}-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread:
            self._thread.join(timeout=5)


class HTTPService:
    """A local service answered by one ``LocalHTTPServer`` (``self.server``): its address and lifecycle."""

    server: LocalHTTPServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
