"""Per-tenant limits on a real local stack, set small through the functions' settings: the WebSocket
``error`` frame, the ``429`` at the handshake, and the ``429`` long-poll with ``Retry-After``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from taskcast.local.testing import RunningStack, running_stack
from tests.conftest import TENANTS
from tests.e2e.conftest import Api, eventually, receive_json

LIMITS = {
    "TASKCAST_SUBSCRIPTIONS_PER_CONNECTION": "1",
    "TASKCAST_CONNECTIONS_PER_TENANT": "2",
    "TASKCAST_LONG_POLLS_PER_TENANT": "1",
}


@pytest.fixture(scope="module")
def limited_stack() -> Iterator[RunningStack]:
    with running_stack(tenants=TENANTS, environment=LIMITS) as running:
        yield running


def test_a_subscription_past_the_limit_gets_an_error_frame_and_the_connection_stays_open(
    limited_stack: RunningStack,
) -> None:
    api = Api(limited_stack, TENANTS["acme"]["api_key"])
    first, second = api.create("sleep", {"seconds": 0}), api.create("sleep", {"seconds": 0})
    with connect(limited_stack.websocket_url(TENANTS["acme"]["api_key"]), open_timeout=15) as connection:
        connection.send(json.dumps({"action": "subscribe", "task_id": first["id"]}))
        assert receive_json(connection)["task_id"] == first["id"]

        connection.send(json.dumps({"action": "subscribe", "task_id": second["id"]}))
        refusal = receive_json(connection)

        assert refusal["type"] == "error"
        assert refusal["code"] == "subscription_limit_exceeded"
        assert refusal["task_id"] == second["id"]
        connection.send(json.dumps({"action": "ping"}))
        assert receive_json(connection) == {"type": "pong"}


def test_a_connection_past_the_tenants_limit_is_refused_at_the_handshake_with_429(
    limited_stack: RunningStack,
) -> None:
    url = limited_stack.websocket_url(TENANTS["globex"]["api_key"])
    with connect(url, open_timeout=15), connect(url, open_timeout=15):
        with pytest.raises(InvalidStatus) as refused, connect(url, open_timeout=15):
            pass
        assert refused.value.response.status_code == 429


def test_a_long_poll_past_the_tenants_limit_answers_429_with_retry_after(limited_stack: RunningStack) -> None:
    api = Api(limited_stack, TENANTS["acme"]["api_key"])
    task = api.create("sleep", {"seconds": 30, "steps": 1})
    # Quiet from RUNNING on (one step: no progress reports), so a hold lasts its whole wait.
    eventually(lambda: api.get(f"/tasks/{task['id']}").json()["status"] == "RUNNING", within_s=20)
    held: list[requests.Response] = []
    holder = threading.Thread(target=lambda: held.append(api.get(f"/tasks/{task['id']}", params={"wait": 4})))
    holder.start()
    try:
        dynamodb = limited_stack.client("dynamodb")

        def holding() -> bool:  # the first request's lease is written (taskcast/long_polls.py)
            answer = dynamodb.query(
                TableName=limited_stack.table_name("TasksTable"),
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": "#long-polls#acme"}},
                ConsistentRead=True,
            )
            return answer["Count"] > 0

        eventually(holding, within_s=20)
        refused = api.get(f"/tasks/{task['id']}", params={"wait": 4})

        assert refused.status_code == 429
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["type"].endswith("/long-poll-limit-exceeded")
        # Without ?wait the same request is answered as usual.
        assert api.get(f"/tasks/{task['id']}").status_code == 200
    finally:
        holder.join(30)
    assert held and held[0].status_code == 200
    api.session.delete(f"{api.base}/tasks/{task['id']}", timeout=30)
