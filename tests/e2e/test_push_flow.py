"""The whole push path on a real local stack: REST create → every version over the WebSocket and as
verified webhooks; subscribing late; the worker's timeout ending a task FAILED."""

from __future__ import annotations

import json

import requests

from tests.conftest import TENANTS
from tests.e2e.conftest import Api, receive_json, statuses_until_terminal
from tests.support.webhook_receiver import WebhookReceiver


def test_every_version_is_pushed_over_websocket_and_as_verified_webhooks(api: Api, websocket) -> None:
    secret = TENANTS["acme"]["webhook_secret"]
    with WebhookReceiver(secret) as receiver:
        task = api.create("sleep", {"seconds": 1, "steps": 3}, callback_url=receiver.url())
        connection = websocket()
        connection.send(json.dumps({"action": "subscribe", "task_id": task["id"], "since_version": 0}))

        pushed = statuses_until_terminal(connection, task["id"])

        versions = [message["version"] for message in pushed]
        assert versions == list(range(1, len(versions) + 1))  # no gap, in order
        assert [message["status"] for message in pushed][:2] == ["PENDING", "RUNNING"]
        assert pushed[-1]["status"] == "SUCCEEDED" and pushed[-1]["progress"] == 100
        assert len(pushed) >= 4  # PENDING, RUNNING, at least one progress step, SUCCEEDED

        received = receiver.wait_for(lambda hooks: len({hook.version for hook in hooks}) >= len(pushed), timeout=15)
        receiver.assert_all_verified()  # every delivery verified with standardwebhooks on arrival
        hooks: dict[int, tuple[dict, dict]] = {}
        for hook in received:
            hooks.setdefault(hook.version, (hook.payload, hook.headers))
    for message in pushed:
        payload, headers = hooks[message["version"]]
        assert payload["type"] == "task.status"
        assert payload["data"] == message
        assert headers["webhook-id"] == f"{task['id']}.{message['version']}"
        assert headers["webhook-signature"].startswith("v1,")


def test_subscribing_after_completion_answers_the_terminal_state_at_once(api: Api, websocket) -> None:
    task = api.create("sleep", {"seconds": 0, "steps": 1})
    final = api.wait_terminal(task["id"])
    assert final["status"] == "SUCCEEDED"

    connection = websocket()
    connection.send(json.dumps({"action": "subscribe", "task_id": task["id"]}))
    message = receive_json(connection)

    assert message["type"] == "task.status"
    assert (message["task_id"], message["status"], message["version"]) == (task["id"], "SUCCEEDED", final["version"])


def test_another_tenants_task_is_refused_on_the_websocket(api: Api, websocket) -> None:
    task = api.create("sleep", {"seconds": 0, "steps": 1})
    connection = websocket(api_key=TENANTS["globex"]["api_key"])
    connection.send(json.dumps({"action": "subscribe", "task_id": task["id"]}))
    message = receive_json(connection)
    assert message["type"] == "error"
    connection.send(json.dumps({"action": "ping"}))
    assert receive_json(connection)["type"] == "pong"  # the connection stays open


def test_a_worker_that_overruns_its_timeout_leaves_the_task_failed_with_timeout(short_worker_stack, websocket) -> None:
    api = Api(short_worker_stack, TENANTS["acme"]["api_key"])
    task = api.create("sleep", {"seconds": 6, "steps": 1})
    connection = websocket(stack_=short_worker_stack)
    connection.send(json.dumps({"action": "subscribe", "task_id": task["id"], "since_version": 0}))

    pushed = statuses_until_terminal(connection, task["id"], timeout_s=30)

    assert pushed[-1]["status"] == "FAILED"
    assert pushed[-1]["error"]["type"].endswith("/timeout")
    monitor = api.get(f"/tasks/{task['id']}").json()
    assert monitor["status"] == "FAILED" and monitor["error"]["type"].endswith("/timeout")
    # Lambda ended the environment: its process was killed, nothing of the worker runs on.
    worker = requests.get(f"{short_worker_stack.http_url}/_local/functions", timeout=10).json()["WorkerFunction"]
    assert worker["timeouts"] == 1 and worker["environments"] == 0, worker
