"""Lambda authorizers (REST and WebSocket ``$connect``): see ``taskcast.authorizers``."""

from __future__ import annotations

from typing import Any

from taskcast.authorizers import authorize_rest, authorize_websocket
from taskcast.settings import Settings
from taskcast.tenants import TenantDirectory

DEPS = TenantDirectory.from_settings(Settings.from_env())


def rest_handler(event: dict[str, Any], context: Any, deps: TenantDirectory = DEPS) -> dict[str, Any]:
    return authorize_rest(event, deps)


def websocket_handler(event: dict[str, Any], context: Any, deps: TenantDirectory = DEPS) -> dict[str, Any]:
    return authorize_websocket(event, deps)
