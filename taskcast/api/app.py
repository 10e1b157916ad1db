"""The REST API: one Powertools resolver with validation, its routes and problem handlers, and the
request entry point that checks the body size before routing and runs long-poll holds after it."""

from __future__ import annotations

import base64
import logging
from functools import cache
from typing import Any

from taskcast.api.cors import cors_config, with_cors
from taskcast.api.deps import ApiDeps
from taskcast.api.holds import RequestState, finish_hold
from taskcast.api.openapi import register_openapi_route
from taskcast.api.problems import error_response, problem_response, register_problem_handlers, unauthorized
from taskcast.api.request_info import tenant_of
from taskcast.api.responses import to_proxy
from taskcast.api.router import ConcurrentRestRouter
from taskcast.api.routes_endpoints import register_endpoint_routes
from taskcast.api.routes_task_tokens import PREFIX as TASK_TOKENS
from taskcast.api.routes_task_tokens import register_task_token_routes
from taskcast.api.routes_tasks import register_task_routes
from taskcast.api.routes_tickets import register_ticket_routes
from taskcast.api.routes_uploads import register_upload_routes
from taskcast.api.routing import RouteTable
from taskcast.jsondepth import MAX_JSON_DEPTH, nesting_depth_exceeds

logger = logging.getLogger(__name__)

# Served without an authenticated tenant (the template sets Auth: NONE on them); the task token routes check
# their token themselves.
PUBLIC_PATHS = frozenset({"/openapi.json"})


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(TASK_TOKENS)


def create_app(cors_origins: tuple[str, ...] = ()) -> ConcurrentRestRouter:
    app = ConcurrentRestRouter(enable_validation=True, cors=cors_config(cors_origins))
    routes = RouteTable(app)
    register_task_routes(app, routes)
    register_upload_routes(app, routes)
    register_ticket_routes(app, routes)
    register_task_token_routes(app, routes)
    register_endpoint_routes(app, routes)
    register_openapi_route(app, routes, cached={})
    register_problem_handlers(app, routes)
    return app


def shared_app(cors_origins: tuple[str, ...] = ()) -> ConcurrentRestRouter:
    """The one app per set of allowed origins (``shared_app()`` and ``shared_app(())`` are the same)."""
    return _app_for(tuple(cors_origins))


@cache
def _app_for(cors_origins: tuple[str, ...]) -> ConcurrentRestRouter:
    return create_app(cors_origins)


def body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        # Decoded size without decoding: 3 bytes per 4 characters, less the padding.
        stripped = body.rstrip("=")
        return len(stripped) * 3 // 4
    return len(body.encode("utf-8"))


def too_large(event: dict[str, Any], limit_bytes: int) -> dict[str, Any] | None:
    size = body_size(event)
    if size <= limit_bytes:
        return None
    return to_proxy(
        problem_response(
            413,
            "payload-too-large",
            "Payload too large",
            f"The body is {size} bytes; inline bodies are limited to {limit_bytes} bytes. "
            "Upload large inputs with POST /uploads and name the upload_id as the task's input.",
        )
    )


def body_text(event: dict[str, Any]) -> str:
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return body
    try:
        return base64.b64decode(body).decode("utf-8", errors="replace")
    except ValueError:
        return ""  # not base64: the resolver refuses it as a bad body


def too_deep(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 400 for a body nested deeper than the limit, found before the JSON parser would recurse on it."""
    if not nesting_depth_exceeds(body_text(event)):
        return None
    return to_proxy(
        problem_response(
            400,
            "nesting-limit-exceeded",
            "JSON nested too deeply",
            f"The body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep.",
        )
    )


# Bodies sent without a JSON media type are still read as JSON: `curl -d` labels its body as a form.
READ_AS_JSON = frozenset({"", "application/x-www-form-urlencoded", "text/plain"})


def content_type_of(event: dict[str, Any]) -> str:
    single = event.get("headers") or {}
    multi = {name: (values or [""])[-1] for name, values in (event.get("multiValueHeaders") or {}).items()}
    for headers in (single, multi):
        for name, value in headers.items():
            if name.lower() == "content-type":
                return (value or "").split(";", 1)[0].strip().lower()
    return ""


def with_json_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """The event with its body labelled JSON, or None when the body is of a media type the API does not read."""
    if not event.get("body"):
        return event
    media_type = content_type_of(event)
    if media_type == "application/json" or media_type.endswith("+json"):
        return event
    if media_type not in READ_AS_JSON:
        return None
    relabelled = dict(event)
    for key in ("headers", "multiValueHeaders"):
        headers = {k: v for k, v in (event.get(key) or {}).items() if k.lower() != "content-type"}
        headers["Content-Type"] = "application/json" if key == "headers" else ["application/json"]
        relabelled[key] = headers
    return relabelled


def handle(event: dict[str, Any], context: Any, deps: ApiDeps) -> dict[str, Any]:
    return with_cors(_answer(event, context, deps), event, cors_config(deps.settings.cors_allowed_origins))


def _answer(event: dict[str, Any], context: Any, deps: ApiDeps) -> dict[str, Any]:
    refusal = too_large(event, deps.settings.inline_limit_bytes)
    if refusal is not None:
        return refusal
    refusal = too_deep(event)
    if refusal is not None:
        return refusal
    json_event = with_json_body(event)
    if json_event is None:
        return to_proxy(
            problem_response(
                415, "unsupported-media-type", "Unsupported media type",
                f"Request bodies are JSON; got {content_type_of(event)!r}. Send Content-Type: application/json.",
            )
        )
    event = json_event
    # CORS preflights carry no credentials (the template routes them past the authorizer).
    public = is_public(str(event.get("path") or "")) or event.get("httpMethod") == "OPTIONS"
    if tenant_of(event) is None and not public:
        # A gateway route without the authorizer: refuse before anything else, whatever the route.
        return to_proxy(error_response(unauthorized()))
    state = RequestState()
    answer = shared_app(deps.settings.cors_allowed_origins).resolve_request(event, context, deps=deps, state=state)
    if state.hold is None:
        return answer
    try:
        return to_proxy(finish_hold(state.hold, deps))
    except Exception:
        logger.exception("unexpected error while holding a request")
        return to_proxy(
            problem_response(500, "internal-error", "Internal error", "The request failed on the server's side.")
        )
