"""Helpers for the push path's functional tests: drive the handlers with AWS-shaped events over moto
tables and queues, a real ``@connections`` server and a real webhook receiver.

The fixtures that build a ``PushEnv`` live in ``tests.support.push_fixtures`` (a pytest plugin the test
modules name in ``pytest_plugins``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers import websocket
from streams import consumer, retry
from taskcast.limits import SubscriptionLimits
from taskcast.models import Status, Task, transition
from taskcast.push.commands import ACTIONS
from taskcast.push.deps import DeliveryDeps, PushDeps, WebSocketDeps
from taskcast.settings import Settings
from taskcast.store import TaskStore
from tests.support.aws_events import SqsPump, StreamReader
from tests.support.connections_server import ConnectionsServer

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"
RETRY_SCHEDULE = "0.2,0.2"
WEBHOOK_TIMEOUT_S = "1"


@dataclass
class PushEnv:
    settings: Settings
    push: PushDeps
    delivery: DeliveryDeps
    dynamodb: Any
    tasks: TaskStore
    stream: StreamReader
    connections: ConnectionsServer
    retry_queue: SqsPump
    dead_letters: SqsPump
    consumed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def websocket(self) -> WebSocketDeps:
        """The WebSocket function's deps, on the same stores and poster as the consumer's."""
        return WebSocketDeps(
            tasks=self.push.tasks,
            subscriptions=self.push.subscriptions,
            poster=self.push.poster,
            limits=SubscriptionLimits.from_settings(self.settings),
        )

    def rebuild(self) -> None:
        """Build the push deps again from the environment (a test changed a setting)."""
        self.push.close()
        self.settings = Settings.from_env()
        self.push = PushDeps.from_settings(self.settings)
        self.delivery = DeliveryDeps.from_settings(self.settings)
        self.tasks = self.push.tasks

    # ---------------------------------------------------------------- tasks
    def create_task(self, tenant: str = "acme", callback_url: str | None = None) -> Task:
        task = Task(id=f"t-{uuid.uuid4().hex[:12]}", tenant=tenant, type="sleep", callback_url=callback_url)
        return self.tasks.create(task)

    def advance(self, task: Task, status: Status, progress: int | None = None, **changes: Any) -> Task:
        return self.tasks.replace(task, transition(task, status, progress=progress, **changes))

    def run_to_success(self, task: Task, steps: int = 2) -> list[Task]:
        written = [self.advance(task, Status.RUNNING)]
        for step in range(1, steps + 1):
            written.append(self.advance(written[-1], Status.RUNNING, progress=step * 100 // (steps + 1)))
        written.append(self.advance(written[-1], Status.SUCCEEDED, result={"ok": True}))
        return written

    # ---------------------------------------------------------------- stream consumer
    def stream_event(self) -> dict[str, Any]:
        return self.stream.state_event()

    def consume(self, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the consumer over the stream's new STATE records (or ``event``) and return its response."""
        event = self.stream_event() if event is None else event
        self.consumed.append(event)
        return consumer.lambda_handler(event, None, self.push)

    # ---------------------------------------------------------------- delivery function
    def run_retries(self, until: Any, timeout_s: float = 10.0) -> int:
        """Run the delivery function over the delivery queue until ``until()`` (first attempts included)."""
        return self.retry_queue.run(
            lambda batch, context: retry.lambda_handler(batch, context, self.delivery), until, timeout_s
        )

    deliver = run_retries

    def queue_drained(self) -> bool:
        """Nothing on the delivery queue: neither waiting, nor in flight, nor delayed."""
        attributes = self.retry_queue.client.get_queue_attributes(
            QueueUrl=self.retry_queue.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return all(value == "0" for value in attributes.values())

    def dead_lettered(self) -> list[dict[str, Any]]:
        messages = self.dead_letters.receive(wait_s=0)
        return [json.loads(message["Body"]) for message in messages]

    # ---------------------------------------------------------------- WebSocket routes
    def ws(self, connection_id: str, body: Any, route_key: str | None = None, tenant: str = "acme") -> dict:
        """Invoke the WebSocket function as API Gateway would for one client frame."""
        text = body if isinstance(body, str) else json.dumps(body)
        if route_key is None:
            try:
                action = json.loads(text).get("action")
            except (ValueError, AttributeError):
                action = None
            route_key = action if action in ACTIONS else "$default"
        return websocket.lambda_handler(ws_event(route_key, connection_id, text, tenant), None, self.websocket)

    def subscribe(self, connection_id: str, task_id: str, tenant: str = "acme", **extra: Any) -> dict:
        return self.ws(connection_id, {"action": "subscribe", "task_id": task_id, **extra}, tenant=tenant)

    def disconnect(self, connection_id: str, tenant: str = "acme") -> dict:
        event = ws_event("$disconnect", connection_id, None, tenant)
        event["requestContext"]["eventType"] = "DISCONNECT"
        self.connections.disconnect(connection_id)
        return websocket.lambda_handler(event, None, self.websocket)


def ws_event(route_key: str, connection_id: str, body: str | None, tenant: str) -> dict[str, Any]:
    event = json.loads((EVENTS / "websocket-message.json").read_text())
    context = event["requestContext"]
    context.update(routeKey=route_key, connectionId=connection_id, authorizer={"tenant": tenant})
    event["body"] = body
    return event


def versions(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["version"] for frame in frames if frame.get("type") == "task.status"]


def failed_sequence_numbers(response: dict[str, Any]) -> list[str]:
    """The records a consumer's partial batch response names."""
    return [failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])]


def sequence_of(event: dict[str, Any], task_id: str, version: int) -> str:
    """The sequence number of ``task_id``'s version ``version`` in a stream ``event``."""
    for record in event["Records"]:
        image = record["dynamodb"].get("NewImage", {})
        if image.get("pk", {}).get("S") == task_id and image.get("version", {}).get("N") == str(version):
            return str(record["dynamodb"]["SequenceNumber"])
    raise AssertionError(f"no record for {task_id} v{version}")
