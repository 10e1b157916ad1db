"""The WebSocket gateway on 127.0.0.1:3001: API Gateway's WebSocket API with the ``websockets`` package.

- Handshake: the ``$connect`` route's authorizer runs first (a missing identity source or
  ``Unauthorized`` → HTTP 401, a ``Deny`` → 403, a failure → 500), then the ``$connect`` route's
  function (an error or a non-2xx ``statusCode`` refuses the connection with that status).
- Each text message goes to the route named by the selection expression (``$request.body.action``),
  else ``$default``; closing runs ``$disconnect`` with ``disconnectStatusCode``/``disconnectReason``.
  The authorizer's context rides on every later event as ``requestContext.authorizer``.
- Limits (configurable): a message over 128 KB closes the connection with 1009; a frame over 32 KB
  or a binary frame gets an ``error`` message and the connection stays; 10 minutes without a client
  message or 2 hours in all close it with 1001 ``Going away``.
- Functions run in a thread pool, never on the event loop; messages of one connection are handled
  concurrently, as API Gateway invokes them (so no ordering between them is promised).

The connections live in a registry that the ``@connections`` API (``connections_api``) uses to post,
describe and close them from other threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from taskcast.local import websocket_api
from taskcast.local.authorizers import ALLOW, DENY, UNAUTHORIZED, decide
from taskcast.local.rest_api import BadIntegrationResponse, proxy_response
from taskcast.local.websocket_api import CONNECT, DISCONNECT, ConnectionRequest, WebSocketApi

log = logging.getLogger("taskcast.local")


@dataclass(frozen=True)
class WebSocketLimits:
    max_message_bytes: int = 128 * 1024
    max_frame_bytes: int = 32 * 1024
    idle_timeout_s: float = 600.0
    max_duration_s: float = 7200.0


@dataclass
class LiveConnection:
    """One open connection, as the registry and the ``@connections`` API see it."""

    request: ConnectionRequest
    socket: ServerConnection
    user_agent: str
    last_active_at: datetime
    last_message_monotonic: float = field(default_factory=time.monotonic)
    server_close: tuple[int, str] | None = None

    @property
    def connection_id(self) -> str:
        return self.request.connection_id

    def describe(self) -> dict[str, Any]:
        """``GetConnection``'s answer, in the wire names boto3 reads (``ConnectedAt`` is ``connectedAt``)."""
        return {
            "connectedAt": _iso(self.request.connected_at),
            "identity": {"sourceIp": self.request.source_ip, "userAgent": self.user_agent},
            "lastActiveAt": _iso(self.last_active_at),
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Gone(Exception):
    """The connection id is unknown or closed (``GoneException``, 410)."""


class WebSocketGateway:
    def __init__(
        self,
        api: WebSocketApi,
        *,
        host: str = "127.0.0.1",
        port: int = 3001,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        limits: WebSocketLimits | None = None,
        workers: int = 64,
    ) -> None:
        self.api = api
        self.host = host
        self.requested_port = port
        self.region = region
        self.account_id = account_id
        self.limits = limits or WebSocketLimits()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ws-route")
        self._connections: dict[str, LiveConnection] = {}
        self._pending: dict[int, ConnectionRequest] = {}  # id(socket) → accepted handshake
        self._opening: dict[int, LiveConnection] = {}  # id(socket) → registered, its handler not yet running
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the WebSocket gateway is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        started = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, args=(loop, started), name="ws-gateway", daemon=True)
        self._thread.start()
        started.wait()
        self.resume()

    def _run_loop(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()
        loop.close()

    def resume(self) -> None:
        """(Re)open the listening port; the first time on the requested port, later on the same one."""
        if self._server is not None:
            return
        port = self._port if self._port is not None else self.requested_port
        self._server = self._call(self._serve(port), timeout=10)
        self._port = self._server.sockets[0].getsockname()[1]

    def pause(self) -> None:
        """Close the listening port and every connection (1001), as if the gateway were unreachable."""
        server, self._server = self._server, None
        if server is not None:
            self._call(self._close(server), timeout=15)

    def stop(self) -> None:
        self.pause()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _call(self, coroutine: Any, timeout: float) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _serve(self, port: int) -> Server:
        return await serve(
            self._handle_connection,
            self.host,
            port,
            process_request=self._process_request,
            process_response=self._process_response,
            max_size=self.limits.max_message_bytes,
            open_timeout=35,  # the authorizer and $connect run within the handshake (29 s integration limit)
            ping_interval=None,  # API Gateway sends no pings; idleness is judged on client messages
            server_header="taskcast-local-websocket",
        )

    async def _close(self, server: Server) -> None:
        server.close(close_connections=True)
        await server.wait_closed()

    # ------------------------------------------------------------------ registry (any thread)
    def connection_ids(self) -> list[str]:
        with self._lock:
            # A handshake that broke after its connection was registered never reaches the handler.
            for connection_id, live in list(self._connections.items()):
                if live.socket.state.name == "CLOSED":
                    del self._connections[connection_id]
                    self._opening.pop(id(live.socket), None)
            return list(self._connections)

    def describe(self, connection_id: str) -> dict[str, Any]:
        return self._live(connection_id).describe()

    def post(self, connection_id: str, data: bytes, timeout_s: float = 10.0) -> None:
        """Send ``data`` to the connection as a text frame (binary if it is not UTF-8)."""
        live = self._live(connection_id)
        try:
            message: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            message = data
        future = self._submit(live.socket.send(message))
        try:
            future.result(timeout_s)
        except ConnectionClosed as error:
            raise Gone(connection_id) from error
        live.last_active_at = datetime.now(UTC)

    def disconnect(self, connection_id: str, code: int = 1000, reason: str = "") -> None:
        live = self._live(connection_id)
        live.server_close = (code, reason)
        self._submit(live.socket.close(code, reason)).result(10)

    def _live(self, connection_id: str) -> LiveConnection:
        with self._lock:
            live = self._connections.get(connection_id)
        if live is None or live.socket.state.name != "OPEN":
            raise Gone(connection_id)
        return live

    def _submit(self, coroutine: Any) -> Future[Any]:
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise Gone("the gateway is stopped")
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    # ------------------------------------------------------------------ handshake
    async def _process_request(self, socket: ServerConnection, request: Request) -> Response | None:
        loop = asyncio.get_running_loop()
        connection = self._connection_request(socket, request)
        connect_route = self.api.routes.get(CONNECT)
        request_id = websocket_api.new_id()
        if connect_route is not None and connect_route.authorizer is not None:
            authorizer = connect_route.authorizer
            if websocket_api.identity_missing(authorizer, connection.headers, connection.query):
                return _refuse(socket, 401, "Unauthorized")
            event = websocket_api.authorizer_event(self.api, connection, request_id, self.region, self.account_id)
            started = time.monotonic()
            invocation = await loop.run_in_executor(self._pool, authorizer.function.invoke, event)
            decision = decide(invocation, event["methodArn"])
            if decision.outcome == UNAUTHORIZED:
                return _refuse(socket, 401, "Unauthorized")
            if decision.outcome == DENY:
                return _refuse(socket, 403, "Forbidden")
            if decision.outcome != ALLOW:
                log.error("WebSocket authorizer failed for connection %s", connection.connection_id)
                return _refuse(socket, 500, "Internal server error")
            connection.authorizer = decision.request_context(int((time.monotonic() - started) * 1000))
        if connect_route is not None and connect_route.function is not None:
            event = websocket_api.connect_event(self.api, connection, request_id)
            invocation = await loop.run_in_executor(self._pool, connect_route.function.invoke, event)
            status = _integration_status(invocation)
            if status >= 300:
                return _refuse(socket, status, "Forbidden" if status < 500 else "Internal server error")
        self._pending[id(socket)] = connection
        return None

    def _connection_request(self, socket: ServerConnection, request: Request) -> ConnectionRequest:
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for key, value in request.headers.raw_items():
            headers[key] = value
            multi_headers.setdefault(key, []).append(value)
        query: dict[str, str] = {}
        multi_query: dict[str, list[str]] = {}
        for key, value in parse_qsl(urlsplit(request.path).query, keep_blank_values=True):
            query[key] = value
            multi_query.setdefault(key, []).append(value)
        source_ip = str(socket.remote_address[0]) if socket.remote_address else "127.0.0.1"
        return ConnectionRequest(
            connection_id=websocket_api.new_id(),
            source_ip=source_ip,
            headers=headers,
            multi_headers=multi_headers,
            query=query,
            multi_query=multi_query,
            connected_at=datetime.now(UTC),
            domain_name=request.headers.get("Host", f"{self.host}:{self._port}"),
        )

    def _process_response(self, socket: ServerConnection, request: Request, response: Response) -> None:
        """Registers an accepted connection before its 101 leaves, as API Gateway has the connection id by
        the time ``$connect`` succeeded: a client never sees its handshake done before ``@connections``
        knows it."""
        connection = self._pending.pop(id(socket), None)
        if connection is None or response.status_code != 101:
            return
        live = LiveConnection(
            request=connection,
            socket=socket,
            user_agent=connection.headers.get("User-Agent", "") or next(
                (value for key, value in connection.headers.items() if key.lower() == "user-agent"), ""
            ),
            last_active_at=datetime.now(UTC),
        )
        with self._lock:
            self._connections[connection.connection_id] = live
            self._opening[id(socket)] = live

    # ------------------------------------------------------------------ connection
    async def _handle_connection(self, socket: ServerConnection) -> None:
        with self._lock:
            live = self._opening.pop(id(socket))
        connection = live.request
        watchdog = asyncio.create_task(self._watch_limits(live))
        try:
            while True:
                await self._receive_one(live)
        except ConnectionClosed:
            pass
        finally:
            watchdog.cancel()
            with self._lock:
                self._connections.pop(connection.connection_id, None)
            code, reason = _disconnect_status(live)
            route = self.api.routes.get(DISCONNECT)
            if route is not None and route.function is not None:
                event = websocket_api.disconnect_event(self.api, connection, code, reason, websocket_api.new_id())
                self._track(asyncio.get_running_loop().run_in_executor(self._pool, route.function.invoke, event))

    async def _receive_one(self, live: LiveConnection) -> None:
        fragments: list[str] = []
        binary = oversized_frame = False
        async for fragment in live.socket.recv_streaming():
            if isinstance(fragment, bytes):
                binary = True
                size = len(fragment)
            else:
                size = len(fragment.encode("utf-8"))
                fragments.append(fragment)
            oversized_frame = oversized_frame or size > self.limits.max_frame_bytes
        live.last_message_monotonic = time.monotonic()
        live.last_active_at = datetime.now(UTC)
        request_id = websocket_api.new_id()
        if binary:
            message = "Binary frames are not supported; send JSON text."
            await self._send_error(live, "unsupported_frame", message, request_id)
        elif oversized_frame:
            limit = self.limits.max_frame_bytes // 1024
            await self._send_error(live, "frame_too_large", f"Frames are limited to {limit} KB.", request_id)
        else:
            body = "".join(fragments)
            loop = asyncio.get_running_loop()
            self._track(loop.run_in_executor(self._pool, self._route_message, live, body, request_id))

    def _route_message(self, live: LiveConnection, body: str, request_id: str) -> None:
        """Runs in the pool: invoke the route's function and send what API Gateway would send back."""
        route = websocket_api.select_route(self.api, body)
        connection_id = live.connection_id
        if route is None or route.function is None:
            self._send_quietly(live, websocket_api.gateway_error("forbidden", "Forbidden", connection_id, request_id))
            return
        event = websocket_api.message_event(self.api, live.request, route.key, body, request_id)
        invocation = route.function.invoke(event, request_id=request_id)
        if invocation.failed:
            message = websocket_api.gateway_error("internal_error", "Internal server error", connection_id, request_id)
            self._send_quietly(live, message)
        elif route.two_way and isinstance(invocation.payload, dict) and invocation.payload.get("body") is not None:
            self._send_quietly(live, str(invocation.payload["body"]))

    def _send_quietly(self, live: LiveConnection, message: str) -> None:
        with contextlib.suppress(ConnectionClosed, Gone, TimeoutError):
            self._submit(live.socket.send(message)).result(10)

    async def _send_error(self, live: LiveConnection, code: str, message: str, request_id: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await live.socket.send(websocket_api.gateway_error(code, message, live.connection_id, request_id))

    async def _watch_limits(self, live: LiveConnection) -> None:
        started = time.monotonic()
        while True:
            now = time.monotonic()
            idle_left = live.last_message_monotonic + self.limits.idle_timeout_s - now
            total_left = started + self.limits.max_duration_s - now
            if idle_left <= 0 or total_left <= 0:
                live.server_close = (1001, "Going away")
                await live.socket.close(1001, "Going away")
                return
            await asyncio.sleep(min(idle_left, total_left))

    def _track(self, future: asyncio.Future[Any]) -> None:
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)


def _refuse(socket: ServerConnection, status: int, message: str) -> Response:
    response = socket.respond(status, json.dumps({"message": message}) + "\n")
    response.headers["Content-Type"] = "application/json"
    return response


def _integration_status(invocation: Any) -> int:
    if invocation.failed:
        return 500
    if invocation.payload is None:
        return 200  # a $connect function may answer nothing
    try:
        status, _, _ = proxy_response(invocation.payload)
    except BadIntegrationResponse:
        return 500
    return status


def _disconnect_status(live: LiveConnection) -> tuple[int, str]:
    protocol = live.socket.protocol
    if live.server_close is not None:
        return live.server_close
    if protocol.close_rcvd_then_sent is False and protocol.close_sent is not None:
        return protocol.close_sent.code, protocol.close_sent.reason  # the gateway closed first (1009)
    if protocol.close_rcvd is None:
        return 1006, "Connection closed abnormally"
    if protocol.close_rcvd.code == 1005:
        return 1005, "Client-side close frame status not set"
    return protocol.close_rcvd.code, protocol.close_rcvd.reason
