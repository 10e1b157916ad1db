"""WebSocket tickets on the running local stack: ``POST /ws-tickets`` through the REST gateway, then a real
``$connect`` with ``?ticket=`` through the WebSocket gateway and the template's authorizer."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from taskcast.local.testing import RunningStack
from tests.conftest import TENANTS
from tests.e2e.conftest import Api, receive_json, statuses_until_terminal


def new_ticket(api: Api) -> str:
    answer = api.session.post(f"{api.base}/ws-tickets", timeout=30)
    assert answer.status_code == 201, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.json()["ticket"]


def refusal_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused, connect(url, open_timeout=15):
        pass
    return refused.value.response.status_code


def test_a_ticket_connects_once_and_the_connection_belongs_to_its_tenant(stack: RunningStack, api: Api) -> None:
    ticket = new_ticket(api)
    url = f"{stack.ws_url}/?ticket={ticket}"
    with connect(url, open_timeout=15) as connection:
        task = api.create("sleep", {"seconds": 0, "steps": 1})
        connection.send(json.dumps({"action": "subscribe", "task_id": task["id"], "since_version": 0}))
        assert statuses_until_terminal(connection, task["id"])[-1]["status"] == "SUCCEEDED"
    # The same ticket again: refused at the handshake, like a bad token.
    assert refusal_status(url) == 403


def test_a_ticket_of_one_tenant_cannot_follow_anothers_task(stack: RunningStack, api: Api) -> None:
    task = api.create("sleep", {"seconds": 0, "steps": 1})
    globex_ticket = new_ticket(Api(stack, TENANTS["globex"]["api_key"]))
    with connect(f"{stack.ws_url}/?ticket={globex_ticket}", open_timeout=15) as connection:
        connection.send(json.dumps({"action": "subscribe", "task_id": task["id"]}))
        assert receive_json(connection)["type"] == "error"


@pytest.mark.parametrize("ticket", ["wst_" + "A" * 43, "forged"])
def test_a_forged_ticket_is_refused_at_the_handshake(stack: RunningStack, ticket: str) -> None:
    assert refusal_status(f"{stack.ws_url}/?ticket={ticket}") == 403


def test_the_api_key_as_token_still_connects(stack: RunningStack) -> None:
    with connect(stack.websocket_url(TENANTS["acme"]["api_key"]), open_timeout=15) as connection:
        connection.send(json.dumps({"action": "ping"}))
        assert receive_json(connection)["type"] == "pong"
