"""CORS for the REST API: which browser origins may call it from their own pages.

The allowed origins are a deployment setting (``CorsAllowedOrigins`` → ``TASKCAST_CORS_ALLOWED_ORIGINS``);
none means same-origin only. Powertools' ``CORSConfig`` decides: a listed origin is echoed back, any other
gets no CORS headers, so the browser keeps the answer from the page. Preflights (``OPTIONS``) carry no
``Authorization`` header, so the template routes them past the authorizer to the resolver, which answers them.
Answers made outside the resolver (413, 415, a refused depth, a long-poll's hold) get the same headers here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import CORSConfig

# What a page sends beyond the CORS-safelisted headers, and what it may read of the answers.
REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Prefer"]
EXPOSED_HEADERS = ["Location", "Retry-After", "Expires", "Preference-Applied"]
# How long a browser may reuse a preflight's answer (Chromium caps it at 2 hours).
PREFLIGHT_MAX_AGE_S = 600


class InvalidOrigin(ValueError):
    pass


def check_origin(origin: str) -> str:
    """An origin as browsers send it: ``scheme://host[:port]``, no path, no trailing slash; or ``*``."""
    if origin == "*":
        return origin
    scheme, separator, rest = origin.partition("://")
    if scheme not in {"http", "https"} or not separator or not rest or any(c in rest for c in "/?#@ "):
        raise InvalidOrigin(f"CORS origin {origin!r} must look like https://app.example.com (no path)")
    return origin


@cache  # one per deployment's origins, built at the first request
def cors_config(origins: tuple[str, ...]) -> CORSConfig | None:
    """Powertools' CORS configuration for ``origins``, or None when cross-origin calls are not allowed."""
    if not origins:
        return None
    checked = [check_origin(origin) for origin in origins]
    return CORSConfig(
        allow_origin=checked[0],
        extra_origins=checked[1:],
        allow_headers=REQUEST_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE_S,
    )


def request_origin(event: dict[str, Any]) -> str | None:
    for headers in (event.get("headers") or {}, event.get("multiValueHeaders") or {}):
        for name, value in headers.items():
            if name.lower() == "origin":
                return (value[0] if value else None) if isinstance(value, list) else value
    return None


def with_cors(answer: dict[str, Any], event: dict[str, Any], config: CORSConfig | None) -> dict[str, Any]:
    """``answer`` (a REST proxy answer) with the CORS headers ``config`` gives the request's origin."""
    if config is None:
        return answer
    headers = dict(answer.get("multiValueHeaders") or {})
    # The answer depends on Origin: caches must keep one copy per origin.
    headers["Vary"] = ["Origin"]
    origin = request_origin(event)
    allowed = config.allowed_origin(origin) if origin else None
    if allowed is not None:
        for name, value in config.to_dict(allowed).items():
            headers[name] = [value]
    return {**answer, "multiValueHeaders": headers}
