"""The answers about one task, as the contract defines them, and proxy responses built outside the resolver."""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

from taskcast.api.waiting import format_seconds, http_date
from taskcast.models import Status, Task, monitor
from taskcast.settings import Settings

JSON = "application/json"


def task_location(task_id: str) -> str:
    return f"/tasks/{task_id}"


def task_headers(task: Task, settings: Settings) -> dict[str, str]:
    """``Expires`` says when the task record is deleted; status answers must never be cached."""
    headers = {"Cache-Control": "no-store"}
    if task.expires_at:
        headers["Expires"] = http_date(task.expires_at)
    if not task.terminal:
        headers["Retry-After"] = str(settings.retry_after_s)
    return headers


def accepted_response(task: Task, settings: Settings) -> Response[Any]:
    """202 for a created (or cancelled) task: where to look, and when."""
    headers = task_headers(task, settings)
    headers["Location"] = task_location(task.id)
    return Response(status_code=202, content_type=JSON, body=monitor(task, settings.websocket_url), headers=headers)


def status_response(task: Task, settings: Settings) -> Response[Any]:
    """``GET /tasks/{id}``: 200 while it runs or once it failed; 303 to the result once it succeeded."""
    headers = task_headers(task, settings)
    status_code = 200
    if task.status is Status.SUCCEEDED:
        status_code = 303
        headers["Location"] = f"{task_location(task.id)}/result"
    return Response(
        status_code=status_code, content_type=JSON, body=monitor(task, settings.websocket_url), headers=headers
    )


def with_preference_applied(response: Response[Any], seconds: float) -> Response[Any]:
    response.headers["Preference-Applied"] = f"wait={format_seconds(seconds)}"
    return response


def to_proxy(response: Response[Any]) -> dict[str, Any]:
    """A Powertools ``Response`` as an API Gateway REST proxy answer, in the shape Powertools itself returns."""
    body = response.body
    encoded = False
    if body is None:
        body = ""
    elif isinstance(body, bytes):
        body, encoded = base64.b64encode(body).decode(), True
    elif not isinstance(body, str):
        body = json.dumps(body, separators=(",", ":"))
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.items():
        headers[name] = [value] if isinstance(value, str) else list(value)
    return {"statusCode": response.status_code, "body": body, "isBase64Encoded": encoded, "multiValueHeaders": headers}
