"""What a handler reads from an API Gateway REST proxy event besides the routed parameters."""

from __future__ import annotations

from typing import Any

from taskcast.headers import header


def tenant_of(event: dict[str, Any]) -> str | None:
    """The tenant the authorizer put in the request context, or None (a gateway without the authorizer)."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    tenant = authorizer.get("tenant") if isinstance(authorizer, dict) else None
    return tenant if isinstance(tenant, str) and tenant else None


def header_values(event: dict[str, Any], name: str) -> list[str]:
    """Every value of a request header, whatever its case, from ``multiValueHeaders`` or ``headers``."""
    for field in ("multiValueHeaders", "headers"):
        value = header(event.get(field), name)
        if value is not None:
            return [value] if isinstance(value, str) else [str(item) for item in value]
    return []
