"""Lambda authorizers (REST and WebSocket ``$connect``): see ``taskcast.authorizers``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskcast import aws
from taskcast.authorizers import KeyLookup, TicketRedeemer, authorize_rest, authorize_websocket
from taskcast.settings import Settings
from taskcast.tenant_cache import RefreshingTenantDirectory
from taskcast.ws_tickets import TicketStore


@dataclass(frozen=True)
class AuthorizerDeps:
    tenants: KeyLookup
    tickets: TicketRedeemer

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthorizerDeps:
        # Both are lazy: the directory loads on first use, the DynamoDB client makes no call until a ticket comes.
        return cls(
            tenants=RefreshingTenantDirectory.from_settings(settings),
            tickets=TicketStore(settings.tasks_table, client=aws.client("dynamodb")),
        )


DEPS = AuthorizerDeps.from_settings(Settings.from_env())


def rest_handler(event: dict[str, Any], context: Any, deps: AuthorizerDeps = DEPS) -> dict[str, Any]:
    return authorize_rest(event, deps.tenants)


def websocket_handler(event: dict[str, Any], context: Any, deps: AuthorizerDeps = DEPS) -> dict[str, Any]:
    return authorize_websocket(event, deps.tenants, deps.tickets)
