"""On a real local stack: a tenant whose callbacks are black-holed slows nobody else down. Its receiver
holds every request open; meanwhile another tenant's tasks run, and all their terminal WebSocket pushes
and webhooks arrive before the black hole's first attempt has even reached its deadline (20 s here).
When the stream consumer waited for first attempts, every batch with a change of the black-holed
tenant waited that long."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from taskcast.local.testing import RunningStack, running_stack
from tests.conftest import TENANTS
from tests.e2e.conftest import FAST_WEBHOOKS, Api, statuses_until_terminal
from tests.support.webhook_receiver import Answer, WebhookReceiver

DEADLINE_S = 20.0  # one webhook attempt's deadline on this stack
HOLD_S = 40.0  # the black hole holds longer than any attempt
STALLED_TASKS = 5
PROMPT_TASKS = 5


@pytest.fixture(scope="module")
def slow_deadline_stack() -> Iterator[RunningStack]:
    environment = {**FAST_WEBHOOKS, "TASKCAST_WEBHOOK_TIMEOUT": str(DEADLINE_S)}
    with running_stack(tenants=TENANTS, environment=environment) as running:
        yield running


@pytest.mark.timeout(180)
def test_a_black_holed_tenant_does_not_delay_another_tenants_pushes_and_webhooks(
    slow_deadline_stack: RunningStack, websocket
) -> None:
    stack = slow_deadline_stack
    acme, globex = Api(stack, TENANTS["acme"]["api_key"]), Api(stack, TENANTS["globex"]["api_key"])
    with (
        WebhookReceiver(TENANTS["globex"]["webhook_secret"]) as black_hole,
        WebhookReceiver(TENANTS["acme"]["webhook_secret"]) as receiver,
    ):
        black_hole.script("/hooks", *[Answer(hold_s=HOLD_S, kind="timeout")] * 100)
        for _ in range(STALLED_TASKS):
            globex.create("sleep", {"seconds": 0, "steps": 1}, callback_url=black_hole.url())
        [first_held] = black_hole.wait_for_count(1, timeout=20)[:1]

        connections = {}
        for _ in range(PROMPT_TASKS):
            task = acme.create("sleep", {"seconds": 0.2, "steps": 1}, callback_url=receiver.url())
            connection = websocket(stack_=stack)
            connection.send(json.dumps({"action": "subscribe", "task_id": task["id"], "since_version": 0}))
            connections[task["id"]] = connection
        finals = {
            task_id: statuses_until_terminal(connection, task_id)[-1] for task_id, connection in connections.items()
        }
        expected = {f"{task_id}.{final['version']}" for task_id, final in finals.items()}
        receiver.wait_for(lambda hooks: expected <= {hook.webhook_id for hook in hooks}, timeout=20)
        done_at = time.time()

        assert all(final["status"] == "SUCCEEDED" for final in finals.values())
        # Everything of acme arrived before globex's first attempt even reached its deadline.
        assert done_at < first_held.at + DEADLINE_S
        assert black_hole.in_flight >= 1
        receiver.assert_all_verified()
        black_hole.assert_all_verified()
