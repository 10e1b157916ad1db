"""The webhook delivery function (``streams.retry.lambda_handler``): see ``taskcast.webhooks.retry``."""

from __future__ import annotations

from typing import Any

from taskcast.push.deps import DeliveryDeps
from taskcast.settings import Settings
from taskcast.webhooks.retry import handle_deliveries

DEPS = DeliveryDeps.from_settings(Settings.from_env())


def lambda_handler(event: dict[str, Any], context: Any, deps: DeliveryDeps = DEPS) -> dict[str, Any]:
    return handle_deliveries(event, context, deps.handler)
