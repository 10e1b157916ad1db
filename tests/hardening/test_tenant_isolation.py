"""Tenant isolation on a real local stack: every way of reaching another tenant's task (read, result,
events, deliveries, cancel, long-poll, subscribe, replay with ``since_version``, idempotency-key reuse) is
refused with exactly the answer an unknown task id gets, so a probe learns nothing about existence."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from taskcast.local.testing import RunningStack
from tests.conftest import TENANTS
from tests.e2e.conftest import Api, receive_json
from tests.hardening.conftest import HARDENING_TENANTS

ACME, GLOBEX = TENANTS["acme"]["api_key"], TENANTS["globex"]["api_key"]
INITECH = HARDENING_TENANTS["initech"]["api_key"]
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def _without(text: str, *ids: str) -> str:
    for value in ids:
        text = text.replace(value, "<id>")
    return text


@pytest.fixture(scope="module")
def owned(stack: RunningStack) -> Iterator[dict[str, str]]:
    """Two acme tasks: one finished (with a callback, so it has deliveries), one held running."""
    acme = Api(stack, ACME)
    finished = acme.create("sleep", {"seconds": 0, "steps": 1}, callback_url="http://127.0.0.1:9/hooks")
    running = acme.create("sleep", {"seconds": 60, "steps": 1})
    acme.wait_terminal(finished["id"])
    yield {"finished": finished["id"], "running": running["id"]}
    acme.session.delete(f"{stack.http_url}/tasks/{running['id']}", timeout=30)


REST_PROBES = [
    ("GET", "/tasks/{id}", {}),
    ("GET", "/tasks/{id}", {"wait": "1"}),
    ("GET", "/tasks/{id}/result", {}),
    ("GET", "/tasks/{id}/events", {}),
    ("GET", "/tasks/{id}/deliveries", {}),
    ("DELETE", "/tasks/{id}", {}),
]


@pytest.mark.parametrize("which", ["finished", "running"])
@pytest.mark.parametrize(("method", "path", "params"), REST_PROBES, ids=[f"{m} {p} {q}" for m, p, q in REST_PROBES])
def test_another_tenants_task_answers_as_an_unknown_one_does(
    stack: RunningStack, owned: dict[str, str], which: str, method: str, path: str, params: dict[str, str]
) -> None:
    intruder = Api(stack, GLOBEX)
    task_id, unknown_id = owned[which], str(uuid.uuid4())

    def probe(target: str) -> requests.Response:
        return intruder.session.request(method, f"{stack.http_url}{path.format(id=target)}", params=params,
                                        timeout=30, allow_redirects=False)

    theirs, nobodys = probe(task_id), probe(unknown_id)

    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.headers["Content-Type"] == nobodys.headers["Content-Type"] == "application/problem+json"
    assert _without(theirs.text, task_id) == _without(nobodys.text, unknown_id)
    # The owner still sees its task untouched (a refused cancel cancelled nothing).
    mine = Api(stack, ACME).get(f"/tasks/{task_id}")
    assert mine.status_code in (200, 303)
    if which == "running":
        assert mine.json()["status"] in {"PENDING", "RUNNING"}


@pytest.mark.parametrize("since_version", [None, 0, 1])
def test_subscribing_or_replaying_another_tenants_task_is_refused_like_an_unknown_one(
    stack: RunningStack, owned: dict[str, str], since_version: int | None
) -> None:
    replies = []
    with connect(stack.websocket_url(GLOBEX), open_timeout=15) as connection:
        for task_id in (owned["finished"], str(uuid.uuid4())):
            command: dict[str, Any] = {"action": "subscribe", "task_id": task_id}
            if since_version is not None:
                command["since_version"] = since_version
            connection.send(json.dumps(command))
            reply = receive_json(connection)
            assert reply["type"] == "error", reply
            replies.append(_without(json.dumps({k: reply[k] for k in ("type", "code", "message")}), task_id))
        connection.send(json.dumps({"action": "ping"}))
        assert receive_json(connection) == {"type": "pong"}  # nothing of acme's task arrived in between
    assert replies[0] == replies[1]


def test_the_same_idempotency_key_in_another_tenant_creates_that_tenants_own_task(stack: RunningStack) -> None:
    key = f"shared-{uuid.uuid4()}"
    body = {"type": "sleep", "input": {"seconds": 0, "steps": 1}}

    def create(api_key: str, payload: dict[str, Any]) -> requests.Response:
        return requests.post(f"{stack.http_url}/tasks", json=payload, timeout=30,
                             headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": key})

    first = create(ACME, body)
    other_body = create(GLOBEX, {**body, "input": {"seconds": 0, "steps": 2}})
    same_body = create(INITECH, body)
    again = create(ACME, body)

    assert first.status_code == 202 and again.status_code == 202
    assert again.json()["id"] == first.json()["id"]  # the owner's replay still works
    # Not 422: globex never learns that acme used this key with another body.
    assert other_body.status_code == 202, other_body.text
    # Not acme's task: the same key and body in another tenant make that tenant's own task.
    assert same_body.status_code == 202 and same_body.json()["id"] not in {first.json()["id"], other_body.json()["id"]}
    assert Api(stack, ACME).get(f"/tasks/{same_body.json()['id']}").status_code == 404
    assert Api(stack, INITECH).get(f"/tasks/{first.json()['id']}").status_code == 404


# ---------------------------------------------------------------------------------------------- $connect
@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 401),
        ("?token=", 401),
        ("?token=wrong-key", 403),
        (f"?token={ACME}x", 403),  # a near miss of a real key
        (f"?token={ACME[:-1]}", 403),
        ("?api_key=" + ACME, 401),  # the key under another name is no token
    ],
    ids=["none", "empty", "wrong", "longer", "shorter", "misnamed"],
)
def test_connect_without_a_valid_token_is_refused_at_the_handshake(stack: RunningStack, query: str,
                                                                    status: int) -> None:
    with pytest.raises(InvalidStatus) as refused, connect(f"{stack.ws_url}/{query}", open_timeout=15):
        pass
    assert refused.value.response.status_code == status


def test_a_valid_token_of_another_tenant_connects_but_never_reaches_the_task(stack: RunningStack,
                                                                             owned: dict[str, str]) -> None:
    with connect(stack.websocket_url(GLOBEX), open_timeout=15) as connection:
        connection.send(json.dumps({"action": "subscribe", "task_id": owned["running"], "since_version": 0}))
        assert receive_json(connection)["code"] == "not_found"
        # Cancelling the task now would push to acme's subscribers only; globex gets nothing but its pong.
        connection.send(json.dumps({"action": "ping"}))
        assert receive_json(connection) == {"type": "pong"}
