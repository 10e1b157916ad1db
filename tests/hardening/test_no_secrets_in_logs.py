"""Keys and secrets never reach the logs: a stack with known tenants runs a full flow at DEBUG level
(creates, bad keys, WebSocket subscribe, webhooks with a failure and retry, cancel, history, deliveries),
then its whole captured output (stdout and stderr of the stack and every function) is searched."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from taskcast.local.testing import RunningStack, running_stack
from tests.e2e.conftest import Api, statuses_until_terminal
from tests.hardening.conftest import FAST_WEBHOOKS
from tests.support.webhook_receiver import Answer, WebhookReceiver

# Distinctive values, so that a hit cannot be a coincidence.
SECRET_TENANTS = {
    "umbrella": {"api_key": "key-umbrella-Q7vX2mZp9LwR4tNc",
                 "webhook_secret": "whsec_" + "dW1icmVsbGEtdW5pcXVlLXNlY3JldA=="},
    "stark": {"api_key": "key-stark-Hh3Kd8Wq1Ys6Bv0F",
              "webhook_secrets": ["whsec_" + "c3RhcmstbmV3LXVuaXF1ZS1zZWNyZXQ=",
                                  "whsec_" + "c3Rhcmstb2xkLXVuaXF1ZS1zZWNyZXQ="]},
}


def _forbidden_strings() -> list[str]:
    found = []
    for tenant in SECRET_TENANTS.values():
        found.append(tenant["api_key"])
        secrets = tenant.get("webhook_secrets") or [tenant["webhook_secret"]]
        for secret in secrets:
            found += [secret, secret.removeprefix("whsec_")]
    return found


@pytest.fixture(scope="module")
def logged_stack() -> Iterator[RunningStack]:
    with running_stack(tenants=SECRET_TENANTS, environment=FAST_WEBHOOKS, log_level="DEBUG") as running:
        yield running


def _full_flow(stack: RunningStack) -> list[str]:
    """Runs the flow; answers the WebSocket tickets it used (credentials too, so they must not be logged)."""
    tickets: list[str] = []
    for name, tenant in SECRET_TENANTS.items():
        api = Api(stack, tenant["api_key"])
        secrets = tenant.get("webhook_secrets") or [tenant["webhook_secret"]]
        with WebhookReceiver(secrets) as receiver:
            receiver.script("/hooks", Answer(500), Answer(503, {"Retry-After": "0"}))
            task = api.create("sleep", {"seconds": 0.5, "steps": 2}, callback_url=receiver.url())
            with connect(stack.websocket_url(tenant["api_key"]), open_timeout=30) as connection:
                connection.send(json.dumps({"action": "subscribe", "task_id": task["id"], "since_version": 0}))
                connection.send("not json")
                statuses_until_terminal(connection, task["id"])
            receiver.wait_for(lambda requests: any(r.answered == 200 for r in requests), timeout=30)
        receiver.assert_all_verified()
        api.get(f"/tasks/{task['id']}/events")
        api.get(f"/tasks/{task['id']}/deliveries")
        held = api.create("sleep", {"seconds": 30, "steps": 1})
        api.session.delete(f"{stack.http_url}/tasks/{held['id']}", timeout=30)
        # A key sent where it does not belong, and a near-miss key: refused, and not logged either.
        requests.get(f"{stack.http_url}/tasks/{task['id']}", timeout=30,
                     headers={"Authorization": f"Bearer {tenant['api_key']}x"})
        requests.post(f"{stack.http_url}/tasks", timeout=30, headers={"Authorization": f"Bearer {tenant['api_key']}"},
                      data="{broken json " + tenant["api_key"])
        with pytest.raises(InvalidStatus), connect(stack.websocket_url(tenant["api_key"] + "x"), open_timeout=30):
            pass
        # A ticket used once, then again (refused).
        ticket = api.session.post(f"{stack.http_url}/ws-tickets", timeout=30).json()["ticket"]
        tickets.append(ticket)
        with connect(f"{stack.ws_url}/?ticket={ticket}", open_timeout=30):
            pass
        with pytest.raises(InvalidStatus), connect(f"{stack.ws_url}/?ticket={ticket}", open_timeout=30):
            pass
        assert name in stack.tenants
    return tickets


def test_no_api_key_or_webhook_secret_appears_in_the_captured_logs(logged_stack: RunningStack) -> None:
    tickets = _full_flow(logged_stack)
    output = logged_stack.output()
    request_log = json.dumps(logged_stack.request_log)

    assert "webhook attempt" in output or "DEBUG" in output  # the log was captured at all
    assert len(output.splitlines()) > 10
    leaks = [value for value in [*_forbidden_strings(), *tickets] if value in output or value in request_log]
    assert leaks == [], "secrets found in the logs"


def test_no_webhook_endpoint_secret_appears_in_the_captured_logs(logged_stack: RunningStack) -> None:
    tenant = SECRET_TENANTS["umbrella"]
    api = Api(logged_stack, tenant["api_key"])
    endpoints = f"{logged_stack.http_url}/webhook-endpoints"
    with WebhookReceiver([]) as receiver:
        created = api.session.post(endpoints, json={"url": receiver.url()}, timeout=30).json()
        rotated = api.session.post(f"{endpoints}/{created['id']}/rotate-secret", timeout=30).json()["secret"]
        receiver.secrets = [created["secret"], rotated]
        receiver.script("/hooks", Answer(500))
        assert api.session.post(f"{endpoints}/{created['id']}/test", timeout=30).json()["outcome"] == "failed"
        task = api.create("sleep", {"seconds": 0.2, "steps": 1})
        receiver.wait_for(lambda got: any(r.data.get("task_id") == task["id"] and r.answered == 200 for r in got),
                          timeout=30)
        api.session.get(f"{endpoints}/{created['id']}/deliveries", timeout=30)
        api.session.delete(f"{endpoints}/{created['id']}", timeout=30)
    receiver.assert_all_verified()
    output = logged_stack.output()
    request_log = json.dumps(logged_stack.request_log)
    secrets = [created["secret"], rotated]
    leaks = [s for value in secrets for s in (value, value.removeprefix("whsec_")) if s in output or s in request_log]
    assert leaks == [], "endpoint secrets found in the logs"
