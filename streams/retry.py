"""The webhook retry handler (``streams.retry.lambda_handler``): see ``taskcast.webhooks.retry``."""

from __future__ import annotations

from typing import Any

from taskcast.push.deps import PushDeps
from taskcast.settings import Settings
from taskcast.webhooks.retry import handle_retries

DEPS = PushDeps.from_settings(Settings.from_env())


def lambda_handler(event: dict[str, Any], context: Any, deps: PushDeps = DEPS) -> dict[str, Any]:
    return handle_retries(event, context, deps.webhooks, deps.metrics)
