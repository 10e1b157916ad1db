"""The upload events queue consumer: see ``taskcast.upload_arrivals``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

from taskcast.settings import Settings
from taskcast.upload_arrivals import UploadEventDeps, handle_events

DEPS = UploadEventDeps.from_settings(Settings.from_env())


def lambda_handler(event: dict[str, Any], context: Any, deps: UploadEventDeps = DEPS) -> PartialItemFailureResponse:
    return handle_events(event, context, deps)
