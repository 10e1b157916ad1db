"""WebSocket API entry point: one function for every route, dispatching on ``requestContext.routeKey``.

``$connect`` only needs to succeed (the REQUEST authorizer refused bad tokens and put the tenant in
``requestContext.authorizer.tenant``, which API Gateway repeats on every later event of the connection).
Replies go back through the ``@connections`` API, as on AWS. Every bad message gets
``{"type": "error", "code", "message"}`` and the connection stays open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from streams.connections import PostFailed, PostOutcome
from streams.fanout import frame
from streams.subscribe import TaskNotFound, subscribe
from streams.wiring import PushPath, push_path

logger = logging.getLogger(__name__)

ACTIONS = ("subscribe", "unsubscribe", "ping")
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
# API Gateway's WebSocket frame limit; larger messages are not something a client of this API sends.
MAX_MESSAGE_BYTES = 32 * 1024
OK = {"statusCode": 200}


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
        isinstance(since, bool) or not isinstance(since, int) or since < 0
    ):
        return Refusal("invalid_since_version", "since_version must be a whole number >= 0.", task_id)
    return Command(action, task_id, since if action == "subscribe" else None)


class Routes:
    def __init__(self, push: PushPath) -> None:
        self.push = push

    def reply(self, connection_id: str, message: dict[str, Any]) -> bool:
        """Post a message to the caller; False when the connection is gone."""
        return self.send(connection_id, frame(message))

    def send(self, connection_id: str, data: bytes) -> bool:
        return self.push.poster.post(connection_id, data) is PostOutcome.DELIVERED

    def run(self, command: Command | Refusal, connection_id: str, tenant: str | None) -> None:
        if isinstance(command, Refusal):
            self.reply(connection_id, command.as_message())
        elif command.action == "ping":
            self.reply(connection_id, {"type": "pong"})
        elif not tenant:
            # Cannot happen behind the $connect authorizer; refuse rather than guess.
            self.reply(connection_id, Refusal("unauthorized", "This connection has no tenant.").as_message())
        elif command.action == "unsubscribe":
            self.push.subscriptions.remove(command.task_id, connection_id)
        else:
            self.subscribe(command, connection_id, tenant)

    def subscribe(self, command: Command, connection_id: str, tenant: str) -> None:
        try:
            subscribe(
                tasks=self.push.tasks,
                subscriptions=self.push.subscriptions,
                send=lambda data: self.send(connection_id, data),
                task_id=command.task_id,
                connection_id=connection_id,
                tenant=tenant,
                since_version=command.since_version,
            )
        except TaskNotFound:
            # The same answer for an unknown task and another tenant's: nothing leaks.
            refusal = Refusal("not_found", f"No task {command.task_id} for this API key.", command.task_id)
            self.reply(connection_id, refusal.as_message())

    def disconnect(self, connection_id: str) -> None:
        self.push.subscriptions.remove_connection(connection_id)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: ARG001 - Lambda signature
    request = event.get("requestContext") or {}
    route_key = request.get("routeKey", "$default")
    connection_id = request.get("connectionId", "")
    if route_key == "$connect":
        return OK
    routes = Routes(push_path())
    try:
        if route_key == "$disconnect":
            routes.disconnect(connection_id)
            return OK
        tenant = (request.get("authorizer") or {}).get("tenant")
        command = parse_command(route_key, event.get("body"), bool(event.get("isBase64Encoded")))
        routes.run(command, connection_id, tenant)
    except PostFailed as error:
        logger.warning("could not reply to connection", extra={"connection_id": connection_id, "error": str(error)})
        return {"statusCode": 500}
    except Exception:
        logger.exception("websocket route failed", extra={"route_key": route_key, "connection_id": connection_id})
        # The reply is best effort: the failure itself is logged above.
        with contextlib.suppress(Exception):
            routes.reply(connection_id, Refusal("internal_error", "Something went wrong; try again.").as_message())
        return {"statusCode": 500}
    return OK
