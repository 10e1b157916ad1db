"""The Lambda authorizers' logic: REST (``Authorization: Bearer <key>``) and WebSocket ``$connect``
(``?ticket=<ticket>`` from ``POST /ws-tickets``, or ``?token=<key>``).

Both map the credential to its tenant and answer an IAM policy whose context carries ``{"tenant": name}``;
API Gateway hands that context to the integration as ``requestContext.authorizer``. No key or ticket is
ever logged: only the outcome and the tenant name are.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from taskcast.auth import api_wildcard, bearer_token, header, policy
from taskcast.tenants import Tenant

logger = logging.getLogger(__name__)

# The exact message API Gateway turns into a 401 answer.
UNAUTHORIZED = "Unauthorized"


class KeyLookup(Protocol):
    def by_api_key(self, api_key: str | None) -> Tenant | None: ...

    def get(self, name: str) -> Tenant | None: ...


class TicketRedeemer(Protocol):
    def redeem(self, ticket: str) -> str | None: ...


def _decide(key: str | None, resource: str, directory: KeyLookup, channel: str) -> dict[str, Any]:
    if key is None:
        logger.info("%s authorizer: no key offered", channel)
        raise Exception(UNAUTHORIZED)  # the documented way to make API Gateway answer 401
    tenant = directory.by_api_key(key)
    if tenant is None:
        logger.info("%s authorizer: unknown key refused", channel)
        return policy("anonymous", "Deny", resource)
    logger.info("%s authorizer: key of tenant %s accepted", channel, tenant.name)
    return policy(tenant.name, "Allow", resource, {"tenant": tenant.name})


def authorize_rest(event: dict[str, Any], directory: KeyLookup) -> dict[str, Any]:
    """REST REQUEST authorizer. Missing or malformed header → 401; unknown key → Deny (403)."""
    key = bearer_token(header(event.get("headers"), "Authorization"))
    resource = api_wildcard(event.get("methodArn", ""))
    return _decide(key, resource, directory, "rest")


def _query_value(event: dict[str, Any], name: str) -> str | None:
    value = (event.get("queryStringParameters") or {}).get(name)
    return value if isinstance(value, str) and value else None


def authorize_websocket(event: dict[str, Any], directory: KeyLookup, tickets: TicketRedeemer) -> dict[str, Any]:
    """WebSocket ``$connect`` REQUEST authorizer (browsers cannot set headers, so the credential is a query
    parameter). A ticket, when given, is the only credential looked at: a used, expired or unknown one is
    denied (403) like an unknown key, and redeeming it uses it up. Neither ticket nor token → 401."""
    resource = event.get("methodArn", "")
    ticket = _query_value(event, "ticket")
    # Only $connect is authorized; later frames ride on the accepted connection.
    if ticket is None:
        return _decide(_query_value(event, "token"), resource, directory, "websocket")
    tenant = tickets.redeem(ticket)
    if tenant is None:
        logger.info("websocket authorizer: unknown, used or expired ticket refused")
        return policy("anonymous", "Deny", resource)
    if directory.get(tenant) is None:  # the tenant was removed after the ticket was issued
        logger.info("websocket authorizer: ticket of removed tenant %s refused", tenant)
        return policy("anonymous", "Deny", resource)
    logger.info("websocket authorizer: ticket of tenant %s accepted", tenant)
    return policy(tenant, "Allow", resource, {"tenant": tenant})
