"""REST API entry point (API Gateway REST API, Lambda proxy integration)."""

from __future__ import annotations

from functools import cache
from typing import Any

from taskcast.api.app import handle
from taskcast.api.deps import ApiDeps
from taskcast.settings import Settings


@cache
def default_deps() -> ApiDeps:
    """Settings and clients, read once per cold start."""
    return ApiDeps.from_settings(Settings.from_env())


def lambda_handler(event: dict[str, Any], context: Any, deps: ApiDeps | None = None) -> dict[str, Any]:
    return handle(event, context, deps or default_deps())
