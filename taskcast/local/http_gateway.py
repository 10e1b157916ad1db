"""The HTTP gateway on 127.0.0.1:3000: API Gateway's REST API in front of the template's functions.

A request becomes the v1 Lambda proxy event of the route it matches (``resource`` = the template path,
``pathParameters``, ``multiValueHeaders``, ``requestContext.authorizer`` = the context the template's
authorizer answered), the function's answer becomes the HTTP response. API Gateway's own answers:

- identity source missing or authorizer raising ``Unauthorized`` → 401, a ``Deny`` policy → 403,
  an authorizer failure → 500, each with the template's ``GatewayResponses`` when it declares them;
- 29 s integration timeout → 504 ``{"message": "Endpoint request timed out"}``; a body over 10 MB → 413
  ``{"message": "Request Too Long"}``; an invalid proxy answer or a function error → 502
  ``{"message": "Internal server error"}``;
- locally, an unknown path answers 404 and a known path with another method answers 403, both as
  ``application/problem+json`` (API Gateway answers 403 ``Missing Authentication Token`` to both).

Besides the API: ``GET /`` serves the dashboard (``client_demo/index.html``), ``GET /dashboard/<file>``
the files of the ``client_demo`` folder (``.html .js .css .png .svg .ts``) and ``GET /dashboard/config.js``
is generated. ``GET /taskcast.js`` and ``GET /taskcast.d.ts`` serve the browser client module and its types
(no auth, as the dashboard's files), at a short URL a page of any origin can import.
Debug routes under ``/_local/`` (never on AWS): ``GET|DELETE /_local/requests`` (the request log: method,
path, status, resource — without headers or bodies), ``GET /_local/stack``, ``POST /_local/websocket/stop|start``.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from taskcast.local import rest_api
from taskcast.local.authorizers import ALLOW, DENY, UNAUTHORIZED, AuthorizerCache, decide
from taskcast.local.httpserver import HTTPService, LocalHTTPServer, QuietHandler
from taskcast.local.rest_api import HttpRequest, MethodNotAllowed, RestApi, Route
from taskcast.models import problem

log = logging.getLogger("taskcast.local")
_TASK_TOKEN_PATH = re.compile(r"^(/task-tokens/)[^/]+")


def redacted_path(path: str) -> str:
    """The path as the request log keeps it: a task token in it is a credential, so it is left out."""
    return _TASK_TOKEN_PATH.sub(r"\1<token>", path)

INTEGRATION_TIMEOUT_S = 29.0
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
DASHBOARD_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ts": "application/typescript; charset=utf-8",  # the browser client's .d.ts
}
# The browser client, served at the root as well as under /dashboard/.
CLIENT_FILES = frozenset({"taskcast.js", "taskcast.d.ts"})
# API Gateway's default answers, by gateway response type.
_DEFAULT_RESPONSES: dict[str, tuple[int, str | None]] = {
    "UNAUTHORIZED": (401, "Unauthorized"),
    "ACCESS_DENIED": (403, "User is not authorized to access this resource with an explicit deny"),
    "AUTHORIZER_FAILURE": (500, None),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "INTEGRATION_FAILURE": (502, "Internal server error"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
}
Answer = tuple[int, list[tuple[str, str]], bytes]


def gateway_response(api: RestApi, kind: str) -> Answer:
    """API Gateway's answer of type ``kind``, customized by the template's ``GatewayResponses``."""
    status, message = _DEFAULT_RESPONSES[kind]
    family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
    custom = api.gateway_responses.get(kind) or api.gateway_responses.get(family)
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", _error_type(kind))]
    body = json.dumps({"message": message}).encode()
    if custom:
        status = int(custom.get("StatusCode", status))
        templates = custom.get("ResponseTemplates") or {}
        if "application/json" in templates:
            body = str(templates["application/json"]).encode()
        for name, value in ((custom.get("ResponseParameters") or {}).get("Headers") or {}).items():
            headers = [(key, old) for key, old in headers if key.lower() != name.lower()]
            headers.append((name, str(value).strip("'")))
    return status, headers, body


def _error_type(kind: str) -> str:
    return {
        "UNAUTHORIZED": "UnauthorizedException",
        "ACCESS_DENIED": "AccessDeniedException",
        "AUTHORIZER_FAILURE": "AuthorizerConfigurationException",
        "INTEGRATION_TIMEOUT": "InternalServerErrorException",
        "INTEGRATION_FAILURE": "InternalServerErrorException",
        "REQUEST_TOO_LARGE": "RequestTooLargeException",
        "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
    }[kind]


def problem_answer(status: int, kind: str, title: str, detail: str) -> Answer:
    body = json.dumps(problem(kind, title, status, detail)).encode()
    return status, [("Content-Type", "application/problem+json")], body


def config_script(websocket_url: str, api_key: str | None) -> bytes:
    """``/dashboard/config.js``: what the dashboard needs to know about this stack."""
    config = {"websocketUrl": websocket_url, "apiKey": api_key}
    return f"window.TASKCAST_CONFIG = {json.dumps(config)};\n".encode()


def dashboard_file(folder: Path, name: str) -> Path | None:
    """The file ``name`` of the dashboard folder, if it is one of the served types and stays inside it."""
    if not name or name.startswith("/") or "\\" in name:
        return None
    candidate = (folder / name).resolve()
    root = folder.resolve()
    if root not in candidate.parents or candidate.suffix not in DASHBOARD_TYPES or not candidate.is_file():
        return None
    return candidate


def default_dashboard_folder() -> Path | None:
    # Found by path, not imported: the dashboard is files to serve, installed beside the taskcast package.
    folder = Path(__file__).resolve().parents[2] / "client_demo"
    return folder if folder.is_dir() else None


class HttpGateway(HTTPService):
    def __init__(
        self,
        apis: list[RestApi],
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        websocket_url: Callable[[], str] = lambda: "ws://127.0.0.1:3001",
        dashboard_api_key: str | None = None,
        dashboard_folder: Path | None = None,
        debug_routes: dict[tuple[str, str], Callable[[], Any]] | None = None,
        request_log_size: int = 10_000,
    ) -> None:
        self.apis = apis
        self.region = region
        self.account_id = account_id
        self.integration_timeout_s = integration_timeout_s
        self.max_payload_bytes = max_payload_bytes
        self.websocket_url = websocket_url
        self.dashboard_api_key = dashboard_api_key
        self.dashboard_folder = dashboard_folder or default_dashboard_folder()
        self.debug_routes = debug_routes or {}
        self._log: collections.deque[dict[str, Any]] = collections.deque(maxlen=request_log_size)
        self._log_lock = threading.Lock()
        self._caches: dict[str, AuthorizerCache] = {}
        self.server = LocalHTTPServer(_GatewayHandler, self, host, port, name="http-gateway")

    # ------------------------------------------------------------------ request log
    @property
    def request_log(self) -> list[dict[str, Any]]:
        """Every API and dashboard request so far (oldest first): method, path, query, status, resource, at."""
        with self._log_lock:
            return list(self._log)

    def clear_request_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def _record(self, request: HttpRequest, status: int, resource: str | None, started: float) -> None:
        entry = {
            "method": request.method,
            "path": redacted_path(request.path),
            "query": request.query,
            "status": status,
            "resource": resource,
            "at": request.received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            "request_id": request.request_id,
        }
        with self._log_lock:
            self._log.append(entry)

    # ------------------------------------------------------------------ handling
    def handle(self, request: HttpRequest) -> tuple[Answer, str | None]:
        """The answer to one API request, and the route's resource when one matched."""
        api, match = self._route(request)
        if match is None:
            return api, None  # type: ignore[return-value]  # api holds the answer here
        route = match.route
        headers = rest_api.forwarded_headers(request, self.port)
        authorizer_context: dict[str, Any] | None = None
        if route.authorizer is not None:
            denied, authorizer_context = self._authorize(api, route, match, request, headers)
            if denied is not None:
                return denied, route.resource
        event = rest_api.proxy_event(api, match, request, headers, authorizer_context, self.account_id)
        return self._integrate(api, route, event, request.request_id), route.resource

    def _route(self, request: HttpRequest) -> tuple[Any, rest_api.RouteMatch | None]:
        allowed: list[str] = []
        for api in self.apis:
            try:
                match = rest_api.match_route(api.routes, request.method, request.path)
            except MethodNotAllowed as error:
                allowed.extend(error.allowed)
                continue
            if match is not None:
                return api, match
        if allowed:
            methods = ", ".join(sorted(set(allowed)))
            detail = f"{request.method} is not a method of {request.path}; it answers {methods}."
            return problem_answer(403, "missing-authentication-token", "Missing Authentication Token", detail), None
        return problem_answer(404, "not-found", "Not Found", f"No route matches {request.path}."), None

    def _authorize(
        self,
        api: RestApi,
        route: Route,
        match: rest_api.RouteMatch,
        request: HttpRequest,
        headers: list[tuple[str, str]],
    ) -> tuple[Answer | None, dict[str, Any] | None]:
        authorizer = route.authorizer
        assert authorizer is not None
        identity = rest_api.identity_values(authorizer, request)
        if identity is None:
            return gateway_response(api, "UNAUTHORIZED"), None
        arn = rest_api.method_arn(api, request.method, request.path, self.region, self.account_id)
        cache = self._caches.setdefault(f"{api.logical_id}/{authorizer.name}", AuthorizerCache(authorizer.ttl_s))
        started = time.monotonic()
        invocation = cache.get(identity)
        if invocation is None:
            event = rest_api.authorizer_event(api, authorizer, match, request, headers, self.region, self.account_id)
            invocation = authorizer.function.invoke(event)
            cache.put(identity, invocation)
        decision = decide(invocation, arn)
        if decision.outcome == UNAUTHORIZED:
            return gateway_response(api, "UNAUTHORIZED"), None
        if decision.outcome == DENY:
            return gateway_response(api, "ACCESS_DENIED"), None
        if decision.outcome != ALLOW:
            log.error("authorizer %s failed for request %s", authorizer.name, request.request_id)
            return gateway_response(api, "AUTHORIZER_FAILURE"), None
        return None, decision.request_context(int((time.monotonic() - started) * 1000))

    def _integrate(self, api: RestApi, route: Route, event: dict[str, Any], request_id: str) -> Answer:
        function = route.function
        invocation = function.invoke(event, wait_s=self.integration_timeout_s)
        if invocation.cut:
            return gateway_response(api, "INTEGRATION_TIMEOUT")
        if invocation.failed:
            return gateway_response(api, "INTEGRATION_FAILURE")
        try:
            return rest_api.proxy_response(invocation.payload)
        except rest_api.BadIntegrationResponse as error:
            log.error("%s request %s: invalid proxy response: %s", function.name, request_id, error)
            return gateway_response(api, "INTEGRATION_FAILURE")

    # ------------------------------------------------------------------ local routes
    def local_answer(self, method: str, path: str) -> Answer | None:
        """The dashboard and debug routes, or None for an API path."""
        if path == "/" and method in {"GET", "HEAD"}:
            return self._dashboard("index.html")
        if path.removeprefix("/") in CLIENT_FILES and method in {"GET", "HEAD"}:
            return self._client_file(path.removeprefix("/"))
        if path.startswith("/dashboard/") and method in {"GET", "HEAD"}:
            name = unquote(path.removeprefix("/dashboard/"))
            if name == "config.js":
                body = config_script(self.websocket_url(), self.dashboard_api_key)
                return 200, [("Content-Type", DASHBOARD_TYPES[".js"]), ("Cache-Control", "no-store")], body
            return self._dashboard(name)
        if path == "/_local/requests" and method == "GET":
            return 200, [("Content-Type", "application/json")], json.dumps(self.request_log).encode()
        if path == "/_local/requests" and method == "DELETE":
            self.clear_request_log()
            return 204, [], b""
        route = self.debug_routes.get((method, path))
        if route is not None:
            result = route()
            return 200, [("Content-Type", "application/json")], json.dumps(result).encode()
        return None

    def _client_file(self, name: str) -> Answer:
        status, headers, body = self._dashboard(name)
        if status == 200:
            # A page of another origin imports it as a module, which the browser fetches in CORS mode.
            headers = [*headers, ("Access-Control-Allow-Origin", "*")]
        return status, headers, body

    def _dashboard(self, name: str) -> Answer:
        found = dashboard_file(self.dashboard_folder, name) if self.dashboard_folder else None
        if found is None:
            return problem_answer(404, "not-found", "Not Found", f"The dashboard has no file {name!r}.")
        return 200, [("Content-Type", DASHBOARD_TYPES[found.suffix]), ("Cache-Control", "no-cache")], found.read_bytes()


class _GatewayHandler(QuietHandler):
    server_version = "taskcast-local-gateway"

    def _serve(self) -> None:
        gateway: HttpGateway = self.server.owner  # type: ignore[attr-defined]
        started, received_at = time.monotonic(), datetime.now(UTC)
        path, _, query = self.path.partition("?")
        request_id = str(uuid.uuid4())
        local = gateway.local_answer(self.command, path)
        if local is not None:
            self.read_body(gateway.max_payload_bytes)
            status, headers, payload = local
            if not path.startswith("/_local/"):
                self._record(gateway, path, query, request_id, status, None, started, received_at)
            self.send(status, payload, headers)
            return
        body = self.read_body(gateway.max_payload_bytes)
        resource: str | None = None
        if body is None:
            answer = gateway_response(gateway.apis[0] if gateway.apis else RestApi("", "", ""), "REQUEST_TOO_LARGE")
        else:
            request = self._request(path, query, body, request_id, received_at)
            try:
                answer, resource = gateway.handle(request)
            except Exception:  # noqa: BLE001 - the gateway answers 500, never drops the connection
                log.exception("gateway error on %s %s (request %s)", self.command, path, request_id)
                detail = f"Request {request_id} failed in the local gateway."
                answer = problem_answer(500, "internal", "Internal Server Error", detail)
        status, headers, payload = answer
        headers = [*headers, ("x-amzn-RequestId", request_id), ("x-amz-apigw-id", request_id[:16])]
        # Logged before the answer goes out, so a client holding its answer always finds it in the log.
        self._record(gateway, path, query, request_id, status, resource, started, received_at)
        self.send(status, payload, headers)

    def _request(self, path: str, query: str, body: bytes, request_id: str, received_at: datetime) -> HttpRequest:
        return HttpRequest(
            method=self.command,
            path=path or "/",
            query=query,
            headers=[(key, value) for key, value in self.headers.items()],
            body=body,
            source_ip=self.client_address[0],
            request_id=request_id,
            received_at=received_at,
        )

    def _record(self, gateway: HttpGateway, path: str, query: str, request_id: str, status: int,
                resource: str | None, started: float, received_at: datetime) -> None:
        request = HttpRequest(self.command, path, query, [], b"", self.client_address[0], request_id, received_at)
        gateway._record(request, status, resource, started)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = _serve  # noqa: N815
