"""The WebSocket routes through the Lambda handler, with replies read back from a real @connections server."""

from __future__ import annotations

import time

import boto3
import pytest

from handlers import websocket
from taskcast.models import Status
from taskcast.push.commands import MAX_SINCE_VERSION
from tests.support.push_env import PushEnv, versions, ws_event

pytest_plugins = ["tests.support.push_fixtures"]

pytestmark = pytest.mark.timeout(30)


def test_connect_succeeds(push_env: PushEnv) -> None:
    event = ws_event("$connect", "c-1", None, "acme")
    assert websocket.lambda_handler(event, None) == {"statusCode": 200}


def test_ping_answers_pong(push_env: PushEnv) -> None:
    connection = push_env.connections.connect()
    push_env.ws(connection, {"action": "ping"})
    assert push_env.connections.frames(connection) == [{"type": "pong"}]


def test_subscribe_sends_the_current_state_at_once(push_env: PushEnv) -> None:
    task = push_env.create_task()
    done = push_env.run_to_success(task)[-1]
    connection = push_env.connections.connect()

    push_env.subscribe(connection, task.id)

    [snapshot] = push_env.connections.frames(connection)
    assert snapshot == {
        "type": "task.status",
        "task_id": task.id,
        "status": "SUCCEEDED",
        "version": done.version,
        "progress": 100,
        "at": done.updated_at,
        "result_url": f"/tasks/{task.id}/result",
    }


def test_subscription_is_stored_with_tenant_version_and_ttl(push_env: PushEnv) -> None:
    task = push_env.create_task()
    running = push_env.advance(task, Status.RUNNING)
    connection = push_env.connections.connect()

    push_env.subscribe(connection, task.id)

    [stored] = push_env.push.subscriptions.for_task(task.id)
    assert stored.connection_id == connection
    assert stored.tenant == "acme"
    assert stored.after_version == running.version
    assert stored.pending_until is None
    # Past API Gateway's 2-hour connection limit.
    assert stored.expires_at > time.time() + 2 * 3600


def test_subscribe_since_version_replays_history_without_a_separate_snapshot(push_env: PushEnv) -> None:
    task = push_env.create_task()
    written = push_env.run_to_success(task, steps=3)
    connection = push_env.connections.connect()

    push_env.subscribe(connection, task.id, since_version=2)

    frames = push_env.connections.frames(connection)
    assert versions(frames) == list(range(3, written[-1].version + 1))
    assert frames[-1]["status"] == "SUCCEEDED"


def test_subscribe_since_latest_version_sends_nothing_until_a_change(push_env: PushEnv) -> None:
    task = push_env.create_task()
    running = push_env.advance(task, Status.RUNNING)
    connection = push_env.connections.connect()
    push_env.stream_event()  # skip what happened before the subscription

    push_env.subscribe(connection, task.id, since_version=running.version)
    assert push_env.connections.frames(connection) == []

    push_env.advance(running, Status.SUCCEEDED)
    push_env.consume()
    assert versions(push_env.connections.frames(connection)) == [running.version + 1]


@pytest.mark.parametrize("owner", ["globex", None])
def test_unknown_and_foreign_tasks_get_the_same_error_and_the_connection_stays_open(
    push_env: PushEnv, owner: str | None
) -> None:
    task_id = push_env.create_task(tenant=owner).id if owner else "t-does-not-exist"
    connection = push_env.connections.connect()

    push_env.subscribe(connection, task_id, tenant="acme")
    push_env.ws(connection, {"action": "ping"})

    error, pong = push_env.connections.frames(connection)
    assert error == {
        "type": "error",
        "code": "not_found",
        "message": f"No task {task_id} for this API key.",
        "task_id": task_id,
    }
    assert pong == {"type": "pong"}
    assert push_env.push.subscriptions.for_task(task_id) == []


@pytest.mark.parametrize(
    ("body", "route_key", "code"),
    [
        ("{not json", "$default", "invalid_json"),
        ('{"action": "dance"}', "$default", "unknown_action"),
        ('{"action": "subscribe", "task_id": 12}', "subscribe", "invalid_task_id"),
        ("x" * (40 * 1024), "$default", "message_too_large"),
        ("[" * 100_000, "$default", "message_too_large"),
        ('{"action": "ping", "x": ' + "[" * 64 + "]" * 64 + "}", "$default", "nesting_limit_exceeded"),
    ],
)
def test_bad_messages_get_an_error_and_the_connection_stays_open(
    push_env: PushEnv, body: str, route_key: str, code: str
) -> None:
    connection = push_env.connections.connect()

    push_env.ws(connection, body, route_key=route_key)
    push_env.ws(connection, {"action": "ping"})

    error, pong = push_env.connections.frames(connection)
    assert error["type"] == "error"
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]
    assert pong == {"type": "pong"}


def test_binary_frames_get_an_error(push_env: PushEnv) -> None:
    connection = push_env.connections.connect()
    event = ws_event("$default", connection, "AAEC", "acme")
    event["isBase64Encoded"] = True

    websocket.lambda_handler(event, None, push_env.websocket)

    [error] = push_env.connections.frames(connection)
    assert error["code"] == "binary_not_supported"


def test_unsubscribe_stops_messages_for_that_task(push_env: PushEnv) -> None:
    task = push_env.create_task()
    other = push_env.create_task()
    connection = push_env.connections.connect()
    push_env.subscribe(connection, task.id)
    push_env.subscribe(connection, other.id)
    push_env.stream_event()

    push_env.ws(connection, {"action": "unsubscribe", "task_id": task.id})
    push_env.advance(task, Status.RUNNING)
    push_env.advance(other, Status.RUNNING)
    push_env.consume()

    frames = push_env.connections.frames(connection)
    assert [(frame["task_id"], frame["version"]) for frame in frames] == [(task.id, 1), (other.id, 1), (other.id, 2)]


def test_disconnect_removes_every_subscription_of_the_connection(push_env: PushEnv) -> None:
    tasks = [push_env.create_task() for _ in range(3)]
    leaving = push_env.connections.connect()
    staying = push_env.connections.connect()
    for task in tasks:
        push_env.subscribe(leaving, task.id)
    push_env.subscribe(staying, tasks[0].id)

    assert push_env.disconnect(leaving) == {"statusCode": 200}

    assert push_env.push.subscriptions.tasks_of_connection(leaving) == []
    assert [s.connection_id for s in push_env.push.subscriptions.for_task(tasks[0].id)] == [staying]


def test_subscribe_to_a_connection_that_is_gone_leaves_no_subscription(push_env: PushEnv) -> None:
    task = push_env.create_task()

    push_env.subscribe("never-connected", task.id)

    assert push_env.push.subscriptions.for_task(task.id) == []



def test_a_since_version_beyond_the_task_does_not_hold_back_later_changes(push_env: PushEnv) -> None:
    task = push_env.create_task()
    connection = push_env.connections.connect()
    push_env.stream_event()

    push_env.subscribe(connection, task.id, since_version=50)
    running = push_env.advance(task, Status.RUNNING)
    push_env.consume()

    assert versions(push_env.connections.frames(connection)) == [running.version]


@pytest.mark.parametrize("since_version", [MAX_SINCE_VERSION + 1, 99_999_999_998, 10**30, -1, 1.5, "3", True, False])
def test_a_since_version_out_of_range_is_refused_and_the_connection_stays_open(
    push_env: PushEnv, since_version: object
) -> None:
    task = push_env.create_task()
    connection = push_env.connections.connect()

    push_env.subscribe(connection, task.id, since_version=since_version)
    push_env.ws(connection, {"action": "ping"})

    error, pong = push_env.connections.frames(connection)
    assert error["code"] == "invalid_since_version"
    assert f"{MAX_SINCE_VERSION:,}" in error["message"]
    assert pong == {"type": "pong"}
    assert push_env.push.subscriptions.for_task(task.id) == []


@pytest.mark.parametrize("since_version", [0, MAX_SINCE_VERSION])
def test_since_version_from_zero_to_the_maximum_is_accepted(push_env: PushEnv, since_version: int) -> None:
    task = push_env.create_task()
    connection = push_env.connections.connect()

    push_env.subscribe(connection, task.id, since_version=since_version)

    frames = push_env.connections.frames(connection)
    assert versions(frames) == ([1] if since_version == 0 else [])
    assert len(push_env.push.subscriptions.for_task(task.id)) == 1


@pytest.mark.parametrize("extra", [{}, {"since_version": 0}])
def test_subscribe_to_an_expired_task_is_not_found(push_env: PushEnv, extra: dict) -> None:
    task = push_env.create_task()
    boto3.client("dynamodb").update_item(
        TableName=push_env.tasks.table_name,
        Key={"pk": {"S": task.id}, "sk": {"S": "STATE"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}},
    )
    connection = push_env.connections.connect()

    push_env.subscribe(connection, task.id, **extra)

    (error,) = push_env.connections.frames(connection)
    assert error["code"] == "not_found"
    assert push_env.push.subscriptions.for_task(task.id) == []


def test_a_handshake_past_its_hold_fails_cleanly_and_a_new_subscribe_resumes_in_order(
    push_env: PushEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = push_env.create_task()
    push_env.consume()
    connection = push_env.connections.connect()
    # A hold shorter than the confirm margin: every handshake is already too late to confirm.
    monkeypatch.setattr("taskcast.store.HANDSHAKE_HOLD_S", 0.5)

    push_env.subscribe(connection, task.id)

    snapshot, error = push_env.connections.frames(connection)
    assert snapshot["version"] == 1
    assert error["type"] == "error" and error["code"] == "internal_error" and "subscribe again" in error["message"]
    assert push_env.push.subscriptions.for_task(task.id) == []  # dropped: live changes are not sent to it
    running = push_env.advance(task, Status.RUNNING)
    push_env.consume()
    assert len(push_env.connections.frames(connection)) == 2

    monkeypatch.undo()
    push_env.subscribe(connection, task.id, since_version=1)
    push_env.advance(running, Status.RUNNING, progress=50)
    push_env.consume()
    assert versions(push_env.connections.frames(connection)[2:]) == [2, 3]
