"""The DynamoDB Streams consumer (``streams.consumer.lambda_handler``): see ``taskcast.push.batch``."""

from __future__ import annotations

from typing import Any

from taskcast.push.batch import handle_batch
from taskcast.push.deps import PushDeps
from taskcast.settings import Settings

DEPS = PushDeps.from_settings(Settings.from_env())


def lambda_handler(event: dict[str, Any], context: Any, deps: PushDeps = DEPS) -> dict[str, Any]:
    return handle_batch(event, context, deps)
