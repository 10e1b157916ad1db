"""REST API entry point (API Gateway REST API, Lambda proxy integration): see ``taskcast.api.app``."""

from __future__ import annotations

from typing import Any

from taskcast.api.app import handle
from taskcast.api.deps import ApiDeps
from taskcast.settings import Settings

DEPS = ApiDeps.from_settings(Settings.from_env())


def lambda_handler(event: dict[str, Any], context: Any, deps: ApiDeps = DEPS) -> dict[str, Any]:
    return handle(event, context, deps)
