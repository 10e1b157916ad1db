"""What a client's WebSocket frame asks for, as a pure function of the event's fields."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from taskcast.jsondepth import MAX_JSON_DEPTH, nesting_depth_exceeds
from taskcast.store import MAX_VERSION

ACTIONS = ("subscribe", "unsubscribe", "ping")
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
# API Gateway's WebSocket frame limit; larger messages are not something a client of this API sends.
MAX_MESSAGE_BYTES = 32 * 1024
# The history after V starts at version V + 1, whose key must still fit the store's ten digits.
MAX_SINCE_VERSION = MAX_VERSION - 1


@dataclass(frozen=True)
class Command:
    action: str
    task_id: str = ""
    since_version: int | None = None


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    task_id: str | None = None

    def as_message(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.task_id is not None:
            body["task_id"] = self.task_id
        return body


def _decode_body(body: Any, is_base64: bool) -> str | Refusal:
    if is_base64:
        return Refusal("binary_not_supported", "Send text frames holding JSON; binary frames are not supported.")
    if not isinstance(body, str) or not body.strip():
        return Refusal("invalid_message", 'Send a JSON object with an "action": subscribe, unsubscribe or ping.')
    if len(body.encode()) > MAX_MESSAGE_BYTES:
        return Refusal("message_too_large", f"Messages are limited to {MAX_MESSAGE_BYTES} bytes.")
    return body


def parse_command(route_key: str, body: Any, is_base64: bool = False) -> Command | Refusal:
    """The command a client frame asks for, or why it is refused. A pure function of the event's fields."""
    text = _decode_body(body, is_base64)
    if isinstance(text, Refusal):
        return text
    if nesting_depth_exceeds(text):
        return Refusal("nesting_limit_exceeded", f"JSON may nest at most {MAX_JSON_DEPTH} levels deep.")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return Refusal("invalid_json", "The message is not valid JSON.")
    if not isinstance(data, dict) or not isinstance(data.get("action"), str):
        return Refusal("invalid_message", 'Send a JSON object with an "action": subscribe, unsubscribe or ping.')
    action = data["action"]
    if action not in ACTIONS or (route_key != "$default" and route_key != action):
        shown = action if len(action) <= 40 else action[:40] + "…"
        return Refusal("unknown_action", f"Unknown action {shown!r}; use subscribe, unsubscribe or ping.")
    if action == "ping":
        return Command("ping")
    task_id = data.get("task_id")
    if not isinstance(task_id, str) or not TASK_ID.match(task_id):
        return Refusal("invalid_task_id", "task_id must be the id of a task (letters, digits, '-', '_', '.', ':').")
    since = data.get("since_version")
    if action == "subscribe" and since is not None and (
        isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= MAX_SINCE_VERSION
    ):
        return Refusal(
            "invalid_since_version", f"since_version must be a whole number from 0 to {MAX_SINCE_VERSION:,}.", task_id
        )
    return Command(action, task_id, since if action == "subscribe" else None)
