"""WebSocket limits through the Lambda handler over moto: subscriptions per connection, subscribers per task,
connections per tenant, and the time budget of one change's fan-out."""

from __future__ import annotations

import time

import pytest

from handlers import websocket
from taskcast.models import Status
from taskcast.store import CONNECTIONS_PREFIX
from tests.support.push_env import PushEnv, versions, ws_event

pytest_plugins = ["tests.support.push_fixtures"]

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def limited(push_env: PushEnv, monkeypatch: pytest.MonkeyPatch) -> PushEnv:
    for name, value in {
        "TASKCAST_SUBSCRIPTIONS_PER_CONNECTION": "2",
        "TASKCAST_SUBSCRIBERS_PER_TASK": "2",
        "TASKCAST_CONNECTIONS_PER_TENANT": "2",
    }.items():
        monkeypatch.setenv(name, value)
    push_env.rebuild()
    return push_env


def errors(env: PushEnv, connection: str) -> list[dict]:
    return [frame for frame in env.connections.frames(connection) if frame.get("type") == "error"]


def connect(env: PushEnv, connection_id: str, tenant: str = "acme") -> dict:
    event = ws_event("$connect", connection_id, None, tenant)
    event["requestContext"]["eventType"] = "CONNECT"
    return websocket.lambda_handler(event, None, env.websocket)


def test_a_connection_past_its_subscription_limit_gets_an_error_frame_and_stays_open(limited: PushEnv) -> None:
    first, second, third = (limited.create_task() for _ in range(3))
    connection = limited.connections.connect()
    limited.subscribe(connection, first.id)
    limited.subscribe(connection, second.id)

    limited.subscribe(connection, third.id)

    [refusal] = errors(limited, connection)
    assert refusal["code"] == "subscription_limit_exceeded"
    assert refusal["task_id"] == third.id
    assert "at most 2" in refusal["message"]
    assert limited.push.subscriptions.for_task(third.id) == []
    # Still open and still served: a ping answers, and subscribing again to a followed task is no new one.
    limited.ws(connection, {"action": "ping"})
    limited.subscribe(connection, first.id)
    assert limited.connections.frames(connection)[-2:] == [
        {"type": "pong"},
        {"type": "task.status", "task_id": first.id, "status": "PENDING", "version": 1, "progress": 0,
         "at": first.updated_at},
    ]
    assert len(errors(limited, connection)) == 1
    # A slot freed by unsubscribe can be used again.
    limited.ws(connection, {"action": "unsubscribe", "task_id": second.id})
    limited.subscribe(connection, third.id)
    assert len(errors(limited, connection)) == 1
    assert [s.connection_id for s in limited.push.subscriptions.for_task(third.id)] == [connection]


def test_a_task_past_its_subscriber_limit_refuses_the_next_subscriber(limited: PushEnv) -> None:
    task = limited.create_task()
    listeners = [limited.connections.connect() for _ in range(3)]
    for listener in listeners:
        limited.subscribe(listener, task.id)

    assert [errors(limited, listener) for listener in listeners[:2]] == [[], []]
    [refusal] = errors(limited, listeners[2])
    assert refusal["code"] == "subscriber_limit_exceeded"
    assert len(limited.push.subscriptions.for_task(task.id)) == 2
    # The refused connection still gets other tasks.
    other = limited.create_task()
    limited.subscribe(listeners[2], other.id)
    assert versions(limited.connections.frames(listeners[2])) == [1]


def test_subscriber_counts_of_another_tenants_task_never_leak(limited: PushEnv) -> None:
    task = limited.create_task(tenant="globex")
    for _ in range(2):
        limited.subscribe(limited.connections.connect(), task.id, tenant="globex")
    intruder = limited.connections.connect()
    limited.subscribe(intruder, task.id)
    assert [frame["code"] for frame in errors(limited, intruder)] == ["not_found"]


def test_connections_past_the_tenants_limit_are_refused_with_429(limited: PushEnv) -> None:
    assert connect(limited, "c-1") == {"statusCode": 200}
    assert connect(limited, "c-2") == {"statusCode": 200}
    assert connect(limited, "c-3") == {"statusCode": 429}
    assert connect(limited, "g-1", tenant="globex") == {"statusCode": 200}  # another tenant's are its own
    # A refused connection leaves no lease; a disconnect frees a slot.
    assert limited.push.subscriptions.count_connections("acme", enough=10) == 2
    limited.disconnect("c-1")
    assert connect(limited, "c-4") == {"statusCode": 200}
    assert connect(limited, "c-5") == {"statusCode": 429}


def test_leases_whose_disconnect_was_lost_stop_counting_once_they_expire(limited: PushEnv) -> None:
    assert connect(limited, "lost-1") == {"statusCode": 200}
    assert connect(limited, "lost-2") == {"statusCode": 200}
    # Over two hours later: API Gateway closed both long ago, but their $disconnect never came.
    for connection_id in ("lost-1", "lost-2"):
        limited.dynamodb.update_item(
            TableName=limited.settings.subscriptions_table,
            Key={"task_id": {"S": CONNECTIONS_PREFIX + "acme"}, "connection_id": {"S": connection_id}},
            UpdateExpression="SET expires_at = :past",
            ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}},
        )

    # The counter refuses, the recount finds no live lease, and the connection is admitted.
    assert connect(limited, "c-1") == {"statusCode": 200}
    assert connect(limited, "c-2") == {"statusCode": 200}
    assert connect(limited, "c-3") == {"statusCode": 429}


def test_unsubscribing_and_disconnecting_give_back_the_tasks_slots(limited: PushEnv) -> None:
    task = limited.create_task()
    first, second, third = (limited.connections.connect() for _ in range(3))
    limited.subscribe(first, task.id)
    limited.subscribe(second, task.id)
    limited.subscribe(second, task.id)  # again: still one subscriber
    limited.subscribe(third, task.id)
    assert [frame["code"] for frame in errors(limited, third)] == ["subscriber_limit_exceeded"]

    limited.ws(first, {"action": "unsubscribe", "task_id": task.id})
    limited.subscribe(third, task.id)
    limited.disconnect(second)
    fourth = limited.connections.connect()
    limited.subscribe(fourth, task.id)

    assert len(errors(limited, third)) == 1 and errors(limited, fourth) == []
    assert sorted(s.connection_id for s in limited.push.subscriptions.for_task(task.id)) == sorted([third, fourth])


def test_a_connection_gone_during_fan_out_gives_back_its_lease(limited: PushEnv) -> None:
    task = limited.create_task()
    connection = limited.connections.connect()
    assert connect(limited, connection) == {"statusCode": 200}
    limited.subscribe(connection, task.id)
    limited.connections.disconnect(connection)  # closed without $disconnect reaching the function

    limited.advance(task, Status.RUNNING)
    limited.consume()

    assert limited.push.subscriptions.count_connections("acme", enough=10) == 0
    assert limited.push.subscriptions.tasks_of_connection(connection) == []


def test_leases_are_not_counted_as_subscriptions(limited: PushEnv) -> None:
    connection = limited.connections.connect()
    assert connect(limited, connection) == {"statusCode": 200}
    assert [task_id for task_id in limited.push.subscriptions.tasks_of_connection(connection)] == [
        CONNECTIONS_PREFIX + "acme"
    ]
    assert limited.push.subscriptions.count_for_connection(connection, enough=10) == 0
    first, second = limited.create_task(), limited.create_task()
    limited.subscribe(connection, first.id)
    limited.subscribe(connection, second.id)
    assert errors(limited, connection) == []


def test_no_post_starts_once_a_changes_budget_is_spent(push_env: PushEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCAST_FANOUT_CHANGE_BUDGET", "0")
    push_env.rebuild()
    task, unfollowed = push_env.create_task(), push_env.create_task()
    listeners = [push_env.connections.connect() for _ in range(3)]
    for listener in listeners:
        push_env.subscribe(listener, task.id)
    push_env.stream_event()  # the creations are not what this test sends
    posted_before = len(push_env.connections.requests)

    push_env.advance(task, Status.RUNNING)
    push_env.advance(unfollowed, Status.RUNNING)
    event = push_env.stream_event()
    response = push_env.consume(event)

    # The record fails (the stream delivers it again); nothing was posted after the budget ran out.
    assert [failure["itemIdentifier"] for failure in response["batchItemFailures"]] == [
        event["Records"][0]["dynamodb"]["SequenceNumber"]
    ]
    assert len(push_env.connections.requests) == posted_before
    monkeypatch.setenv("TASKCAST_FANOUT_CHANGE_BUDGET", "20")
    push_env.rebuild()
    assert push_env.consume({"Records": event["Records"][:1]}) == {"batchItemFailures": []}
    for listener in listeners:
        assert versions(push_env.connections.frames(listener)) == [1, 2]
