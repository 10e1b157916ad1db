"""The Lambda authorizers' logic: REST (``Authorization: Bearer <key>``) and WebSocket ``$connect`` (``?token=<key>``).

Both map an API key to its tenant and answer an IAM policy whose context carries ``{"tenant": name}``;
API Gateway hands that context to the integration as ``requestContext.authorizer``. No key is ever
logged: only the outcome and the tenant name are.
"""

from __future__ import annotations

import logging
from typing import Any

from taskcast.auth import api_wildcard, bearer_token, header, policy
from taskcast.tenants import TenantDirectory

logger = logging.getLogger(__name__)

# The exact message API Gateway turns into a 401 answer.
UNAUTHORIZED = "Unauthorized"


def _decide(key: str | None, resource: str, directory: TenantDirectory, channel: str) -> dict[str, Any]:
    if key is None:
        logger.info("%s authorizer: no key offered", channel)
        raise Exception(UNAUTHORIZED)  # the documented way to make API Gateway answer 401
    tenant = directory.by_api_key(key)
    if tenant is None:
        logger.info("%s authorizer: unknown key refused", channel)
        return policy("anonymous", "Deny", resource)
    logger.info("%s authorizer: key of tenant %s accepted", channel, tenant.name)
    return policy(tenant.name, "Allow", resource, {"tenant": tenant.name})


def authorize_rest(event: dict[str, Any], directory: TenantDirectory) -> dict[str, Any]:
    """REST REQUEST authorizer. Missing or malformed header → 401; unknown key → Deny (403)."""
    key = bearer_token(header(event.get("headers"), "Authorization"))
    resource = api_wildcard(event.get("methodArn", ""))
    return _decide(key, resource, directory, "rest")


def authorize_websocket(event: dict[str, Any], directory: TenantDirectory) -> dict[str, Any]:
    """WebSocket ``$connect`` REQUEST authorizer (browsers cannot set headers, so the key is a query parameter)."""
    query = event.get("queryStringParameters") or {}
    token = query.get("token") if isinstance(query.get("token"), str) else None
    # Only $connect is authorized; later frames ride on the accepted connection.
    return _decide(token or None, event.get("methodArn", ""), directory, "websocket")
