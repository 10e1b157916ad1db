"""WebSocket API entry point (every route): see ``taskcast.push.routes``."""

from __future__ import annotations

from typing import Any

from taskcast.push.deps import WebSocketDeps
from taskcast.push.routes import handle_event
from taskcast.settings import Settings

DEPS = WebSocketDeps.from_settings(Settings.from_env())


def lambda_handler(event: dict[str, Any], context: Any, deps: WebSocketDeps = DEPS) -> dict[str, Any]:
    return handle_event(event, deps)
