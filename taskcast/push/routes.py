"""The WebSocket API's routes: one function for every route, dispatching on ``requestContext.routeKey``.

``$connect`` comes after the REQUEST authorizer refused bad tokens and put the tenant in
``requestContext.authorizer.tenant``, which API Gateway repeats on every later event of the connection.
It writes the connection's lease and refuses the handshake with ``429`` when the tenant already has
``connections_per_tenant`` live connections; ``$disconnect`` deletes the lease (and it expires anyway).
Replies go back through the ``@connections`` API, as on AWS. Every bad message gets
``{"type": "error", "code", "message"}`` and the connection stays open.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from taskcast.push.commands import Command, Refusal, parse_command
from taskcast.push.deps import WebSocketDeps
from taskcast.push.fanout import PostFailed, PostOutcome, frame
from taskcast.push.subscribe import HandshakeTooSlow, SubscriptionRefused, TaskNotFound, subscribe

logger = logging.getLogger(__name__)

OK = {"statusCode": 200}
TOO_MANY_CONNECTIONS = {"statusCode": 429}


class Routes:
    def __init__(self, push: WebSocketDeps) -> None:
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
                limits=self.push.limits,
            )
        except SubscriptionRefused as refused:
            refusal = Refusal(refused.refusal.code, refused.refusal.message, command.task_id)
            self.reply(connection_id, refusal.as_message())
        except TaskNotFound:
            # The same answer for an unknown task and another tenant's: nothing leaks.
            refusal = Refusal("not_found", f"No task {command.task_id} for this API key.", command.task_id)
            self.reply(connection_id, refusal.as_message())
        except HandshakeTooSlow:
            logger.warning("subscribe handshake ran past its hold", extra={"connection_id": connection_id})
            refusal = Refusal("internal_error", "The subscription could not be completed; subscribe again.",
                              command.task_id)
            self.reply(connection_id, refusal.as_message())

    def connect(self, connection_id: str, tenant: str | None) -> dict[str, Any]:
        """Admit a connection within its tenant's limit: one transaction takes the count and writes the lease."""
        if not tenant:
            return OK  # cannot happen behind the authorizer; its messages are refused anyway
        if self.push.subscriptions.open_connection(connection_id, tenant, self.push.limits.connections_per_tenant):
            return OK
        logger.warning("connection refused: tenant at its connection limit", extra={"tenant": tenant})
        return TOO_MANY_CONNECTIONS

    def disconnect(self, connection_id: str, tenant: str | None) -> None:
        self.push.subscriptions.remove_connection(connection_id, tenant)


def handle_event(event: dict[str, Any], deps: WebSocketDeps) -> dict[str, Any]:
    request = event.get("requestContext") or {}
    route_key = request.get("routeKey", "$default")
    connection_id = request.get("connectionId", "")
    tenant = (request.get("authorizer") or {}).get("tenant")
    routes = Routes(deps)
    if route_key == "$connect":
        try:
            return routes.connect(connection_id, tenant)
        except Exception:
            logger.exception("websocket connect failed", extra={"connection_id": connection_id})
            return {"statusCode": 500}
    try:
        if route_key == "$disconnect":
            routes.disconnect(connection_id, tenant)
            return OK
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
