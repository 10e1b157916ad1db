"""A small in-memory taskcast speaking the external contract over real HTTP and WebSocket on 127.0.0.1.

It lets the client tests script what the server does (drop a connection, repeat messages, refuse the
WebSocket, answer 503) precisely, which the real stack cannot be asked to do on cue. Jobs advance only
when somebody follows the task (subscribe or status read), so no test needs to sleep.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response
from websockets.sync.server import Server, ServerConnection, serve

from taskcast.models import problem

API_KEY = "key-fake-0123456789"
DASHBOARD = Path(__file__).resolve().parents[2] / "client_demo"

# What each job type does once followed: (status, progress) steps; the last one is terminal.
SCRIPTS: dict[str, list[tuple[str, int]]] = {
    "sleep": [("RUNNING", 0), ("RUNNING", 50), ("SUCCEEDED", 100)],
    "fail": [("RUNNING", 0), ("FAILED", 0)],
    "hang": [("RUNNING", 10)],
}


@dataclass
class FakeTask:
    id: str
    type: str
    input: Any
    history: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None
    error: dict[str, Any] | None = None
    started: bool = False

    @property
    def current(self) -> dict[str, Any]:
        return self.history[-1]

    def monitor(self, websocket_url: str) -> dict[str, Any]:
        entry = self.current
        body = {
            "id": self.id,
            "type": self.type,
            "status": entry["status"],
            "version": entry["version"],
            "progress": entry["progress"],
            "created_at": self.history[0]["at"],
            "updated_at": entry["at"],
            "links": {
                "self": f"/tasks/{self.id}",
                "result": f"/tasks/{self.id}/result",
                "events": f"/tasks/{self.id}/events",
                "websocket": websocket_url,
            },
        }
        if self.error is not None:
            body["error"] = self.error
        return body


def status_message(task_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    message = {"type": "task.status", "task_id": task_id, **entry}
    if entry["status"] == "SUCCEEDED":
        message["result_url"] = f"/tasks/{task_id}/result"
    return message


class FakeTaskcast:
    """REST on ``http_url``, WebSocket on ``ws_url``; knobs below change its behaviour for one test."""

    def __init__(self) -> None:
        self.tasks: dict[str, FakeTask] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []  # method, path, query
        self.frames_received: list[dict[str, Any]] = []
        self.connections = 0
        self.pinged = threading.Event()
        # knobs
        self.drop_after_messages: int | None = None  # close the first connection after N status messages
        self.repeat_messages = False  # send every status message twice (at-least-once delivery)
        self.refuse_websocket = False  # answer the handshake with 503
        self.unavailable_polls = 0  # answer that many status reads with 503 + Retry-After: 0
        self.redirect_without_body = True  # a finished task's 303 carries no monitor
        self.result_via_presigned_url = False
        self.error_on_subscribe = False
        self.tickets: set[str] = set()  # issued by POST /ws-tickets, not yet used
        self.handshake_queries: list[dict[str, list[str]]] = []  # the query of every WebSocket handshake
        self._changed = threading.Condition()
        self._subscribers: dict[str, list[ServerConnection]] = {}
        self._send_locks: dict[int, threading.Lock] = {}
        self._counter = 0
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._http_handler())
        self.http.daemon_threads = True
        # Another origin, like S3 beside API Gateway, for results handed out as presigned URLs.
        self.blobs = ThreadingHTTPServer(("127.0.0.1", 0), self._http_handler())
        self.blobs.daemon_threads = True
        self.ws: Server = serve(self._ws_handler, "127.0.0.1", 0, process_request=self._check_token)
        self._threads = [
            threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self.ws.serve_forever, daemon=True),
            threading.Thread(target=self.blobs.serve_forever, args=(0.05,), daemon=True),
        ]

    # -- lifecycle

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    @property
    def blobs_url(self) -> str:
        return f"http://127.0.0.1:{self.blobs.server_address[1]}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws.socket.getsockname()[1]}"

    def __enter__(self) -> FakeTaskcast:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ws.shutdown()
        for server in (self.http, self.blobs):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- the task model

    def create(self, job_type: str, job_input: Any) -> FakeTask:
        with self._changed:
            self._counter += 1
            task = FakeTask(f"task-{self._counter:04d}", job_type, job_input)
            task.history.append({"version": 1, "status": "PENDING", "progress": 0, "at": self._at(0)})
            self.tasks[task.id] = task
        return task

    def advance(self, task: FakeTask, status: str, progress: int) -> None:
        with self._changed:
            if task.current["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return
            entry = {"version": task.current["version"] + 1, "status": status, "progress": progress}
            entry["at"] = self._at(entry["version"])
            if status == "SUCCEEDED":
                task.result = {"echo": task.input, "type": task.type}
            if status in ("FAILED", "CANCELLED"):
                kind = "job-failed" if status == "FAILED" else "cancelled"
                task.error = problem(kind, f"Task {status.lower()}", 500 if status == "FAILED" else 409, "scripted")
                entry["error"] = task.error
            task.history.append(entry)
            self._changed.notify_all()
            subscribers = list(self._subscribers.get(task.id, []))
        for connection in subscribers:
            self._push(connection, status_message(task.id, entry))

    def _followed(self, task: FakeTask) -> None:
        """The first follower starts the job, in its own thread so answers are never held up by it."""
        with self._changed:
            if task.started:
                return
            task.started = True

        def run() -> None:
            for status, progress in SCRIPTS.get(task.type, []):
                self.advance(task, status, progress)

        threading.Thread(target=run, daemon=True).start()

    @staticmethod
    def _at(version: int) -> str:
        return f"2030-01-01T00:00:{version:02d}.000Z"

    def wait_for_change(self, task: FakeTask, version: int, seconds: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: task.current["version"] != version, timeout=seconds)

    def status_polls(self) -> list[tuple[str, str, dict[str, list[str]]]]:
        return [r for r in self.requests if r[0] == "GET" and r[1].count("/") == 2 and r[1].startswith("/tasks/")]

    # -- WebSocket

    def _check_token(self, connection: ServerConnection, request: Any) -> Response | None:
        if self.refuse_websocket:
            return Response(503, "Service Unavailable", Headers(), b"")
        query = parse_qs(urlsplit(request.path).query)
        self.handshake_queries.append(query)
        if "ticket" in query:  # single use, as the real authorizer
            ticket = query["ticket"][0]
            if ticket not in self.tickets:
                return Response(403, "Forbidden", Headers(), b"")
            self.tickets.discard(ticket)
            return None
        if query.get("token", [""])[0] != API_KEY:
            return Response(401, "Unauthorized", Headers(), b"")
        return None

    def _push(self, connection: ServerConnection, message: dict[str, Any]) -> None:
        lock = self._send_locks.setdefault(id(connection), threading.Lock())
        with lock:
            try:
                for _ in range(2 if self.repeat_messages else 1):
                    connection.send(json.dumps(message))
                sent = getattr(connection, "status_sent", 0) + 1
                connection.status_sent = sent  # type: ignore[attr-defined]
                if self.drop_after_messages is not None and sent >= self.drop_after_messages:
                    self.drop_after_messages = None
                    self._unsubscribe_all(connection)
                    connection.close()
            except ConnectionClosed:
                pass

    def _unsubscribe_all(self, connection: ServerConnection) -> None:
        with self._changed:
            for subscribers in self._subscribers.values():
                if connection in subscribers:
                    subscribers.remove(connection)

    def _ws_handler(self, connection: ServerConnection) -> None:
        self.connections += 1
        try:
            for raw in connection:
                frame = json.loads(raw)
                self.frames_received.append(frame)
                if frame.get("action") == "ping":
                    self.pinged.set()
                    connection.send(json.dumps({"type": "pong"}))
                elif frame.get("action") == "subscribe":
                    self._subscribe(connection, frame)
        except ConnectionClosed:
            pass
        finally:
            self._unsubscribe_all(connection)

    def _subscribe(self, connection: ServerConnection, frame: dict[str, Any]) -> None:
        task = self.tasks.get(frame.get("task_id", ""))
        if task is None or self.error_on_subscribe:
            connection.send(json.dumps({"type": "error", "code": "not_found", "message": "no such task"}))
            return
        with self._changed:
            since = frame.get("since_version")
            backlog = task.history[:] if since is None else [e for e in task.history if e["version"] > since]
            if since is None:
                backlog = backlog[-1:]
            self._subscribers.setdefault(task.id, []).append(connection)
        for entry in backlog:
            self._push(connection, status_message(task.id, entry))
        self._followed(task)

    # -- HTTP

    def _http_handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                content_type = "application/problem+json" if status >= 400 else "application/json"
                if data:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                fake.requests.append((method, parts.path, parse_qs(parts.query)))
                if method == "GET" and (parts.path == "/" or parts.path.startswith("/dashboard/")):
                    return self._dashboard(parts.path)
                if parts.path.startswith("/blob/"):  # the "presigned" URL: refuses a bearer header like S3
                    if "Authorization" in self.headers:
                        return self._send(400, problem("bad", "Authorization not allowed", 400, "presigned"))
                    task = fake.tasks[parts.path.split("/")[2]]
                    return self._send(200, task.result)
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    return self._send(401, problem("unauthorized", "Unauthorized", 401, "Send a valid API key."))
                segments = parts.path.strip("/").split("/")
                if method == "POST" and segments == ["tasks"]:
                    return self._create()
                if method == "POST" and segments == ["ws-tickets"]:
                    ticket = "wst_" + secrets.token_urlsafe(32)
                    fake.tickets.add(ticket)
                    return self._send(201, {"ticket": ticket, "expires_at": "2030-01-01T00:00:00Z"},
                                      {"Cache-Control": "no-store"})
                if len(segments) < 2 or segments[0] != "tasks" or segments[1] not in fake.tasks:
                    return self._send(404, problem("not-found", "Not Found", 404, "No such task."))
                task = fake.tasks[segments[1]]
                tail = segments[2:]
                if method == "GET" and not tail:
                    return self._status(task, parse_qs(parts.query))
                if method == "GET" and tail == ["events"]:
                    return self._send(200, task.history)
                if method == "GET" and tail == ["result"]:
                    return self._result(task)
                if method == "DELETE" and not tail:
                    if task.current["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                        return self._send(409, problem("conflict", "Already finished", 409, "Task ended."))
                    fake.advance(task, "CANCELLED", task.current["progress"])
                    return self._send(202, task.monitor(fake.ws_url))
                return self._send(405, problem("method", "Method Not Allowed", 405, method))

            def _dashboard(self, path: str) -> None:
                name = "index.html" if path == "/" else path.removeprefix("/dashboard/")
                if name == "config.js":
                    config = {"websocketUrl": fake.ws_url, "apiKey": API_KEY}
                    data = f"window.TASKCAST_CONFIG = {json.dumps(config)};".encode()
                else:
                    file = DASHBOARD / name
                    if file.parent != DASHBOARD or not file.is_file():
                        return self._send(404, problem("not-found", "Not Found", 404, name))
                    data = file.read_bytes()
                kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
                self.send_response(200)
                self.send_header("Content-Type", kinds.get(Path(name).suffix, "application/octet-stream"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _create(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                if body.get("type") not in SCRIPTS:
                    return self._send(400, problem("unknown-job-type", "Unknown job type", 400, str(body)))
                task = fake.create(body["type"], body.get("input"))
                headers = {"Location": f"/tasks/{task.id}", "Retry-After": "1"}
                return self._send(202, task.monitor(fake.ws_url), headers)

            def _status(self, task: FakeTask, query: dict[str, list[str]]) -> None:
                if fake.unavailable_polls > 0:
                    fake.unavailable_polls -= 1
                    return self._send(503, problem("busy", "Service Unavailable", 503, "later"), {"Retry-After": "0"})
                fake._followed(task)
                if "wait" in query and task.current["status"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    fake.wait_for_change(task, task.current["version"], float(query["wait"][0]))
                if task.current["status"] == "SUCCEEDED":
                    body = None if fake.redirect_without_body else task.monitor(fake.ws_url)
                    return self._send(303, body, {"Location": f"/tasks/{task.id}/result"})
                return self._send(200, task.monitor(fake.ws_url), {"Retry-After": "1"})

            def _result(self, task: FakeTask) -> None:
                if task.current["status"] != "SUCCEEDED":
                    return self._send(409, problem("not-finished", "Not finished", 409, "Task still running."))
                if fake.result_via_presigned_url:
                    return self._send(303, None, {"Location": f"{fake.blobs_url}/blob/{task.id}?X-Amz-Signature=x"})
                return self._send(200, task.result)

            def do_GET(self) -> None:  # noqa: N802
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._route("DELETE")

        return Handler
