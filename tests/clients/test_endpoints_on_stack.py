"""``client.endpoints`` and ``taskcast webhook-endpoints`` against a real local stack: deliveries reach a
receiver on 127.0.0.1 and are verified there with ``standardwebhooks`` and the endpoint's secret."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskcast_client.client import TaskcastClient, TaskcastError
from tests.clients.test_clients_on_stack import taskcast_command
from tests.e2e.conftest import eventually
from tests.support.webhook_receiver import Answer, WebhookReceiver

pytestmark = pytest.mark.e2e

FAST_WEBHOOKS = {"TASKCAST_WEBHOOK_RETRY_SCHEDULE": "0.2,0.5", "TASKCAST_WEBHOOK_TIMEOUT": "5"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    from taskcast.local.testing import running_stack

    # The flow tests one endpoint twice within seconds: test events unpaced here (they have their own test).
    with running_stack(environment={**FAST_WEBHOOKS, "TASKCAST_ENDPOINT_TEST_INTERVAL": "0"}) as running:
        yield running


@pytest.fixture
def client(stack: Any) -> Iterator[TaskcastClient]:
    client = TaskcastClient(stack.http_url, stack.api_key)
    yield client
    for endpoint in client.endpoints.list():
        client.endpoints.delete(endpoint["id"])


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver([]) as running:
        yield running


def cli(stack: Any, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TASKCAST_URL": stack.http_url, "TASKCAST_API_KEY": stack.api_key}
    return subprocess.run([*taskcast_command(), "webhook-endpoints", *arguments], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.timeout(120)
def test_the_sdk_manages_an_endpoint_and_its_deliveries_verify(
    client: TaskcastClient, receiver: WebhookReceiver
) -> None:
    endpoint = client.endpoints.create(receiver.url(), statuses=["SUCCEEDED"], description="sdk")
    receiver.secrets = [endpoint["secret"]]
    assert client.endpoints.get(endpoint["id"])["filter"] == {"statuses": ["SUCCEEDED"]}
    assert [e["id"] for e in client.endpoints.list()] == [endpoint["id"]]

    assert client.endpoints.test(endpoint["id"]) == {"status_code": 200, "outcome": "delivered"}
    receiver.script("/hooks", *[Answer(status=500, kind="http_500")] * 3)
    since = datetime.now(UTC) - timedelta(seconds=1)
    outcome = client.submit("sleep", {"seconds": 0.2, "steps": 1}).wait(timeout=30)
    hooks = receiver.wait_for_count(1 + 3, timeout=20)  # the test event, then three failed attempts
    webhook_id = hooks[-1].webhook_id
    assert webhook_id.startswith(f"{endpoint['id']}.") and webhook_id.endswith(f".{outcome.version}")

    def logged_outcome() -> str:
        return next(iter(client.endpoints.all_deliveries(endpoint["id"])), {}).get("outcome", "")

    eventually(lambda: logged_outcome() == "failed")
    assert client.endpoints.replay(endpoint["id"], since, only_failed=True) == 1
    hooks = receiver.wait_for_count(1 + 3 + 1, timeout=20)
    assert hooks[-1].webhook_id == webhook_id and hooks[-1].answered == 200

    secret = client.endpoints.rotate_secret(endpoint["id"])
    receiver.secrets = [secret, endpoint["secret"]]
    assert client.endpoints.test(endpoint["id"])["outcome"] == "delivered"
    receiver.assert_all_verified()

    assert client.endpoints.disable(endpoint["id"])["enabled"] is False
    assert client.endpoints.update(endpoint["id"], statuses=None, types=["sleep"], enabled=True)["filter"] == {
        "types": ["sleep"]
    }
    client.endpoints.delete(endpoint["id"])
    with pytest.raises(TaskcastError) as refused:
        client.endpoints.get(endpoint["id"])
    assert refused.value.status == 404


@pytest.mark.timeout(120)
def test_the_cli_manages_an_endpoint(stack: Any, receiver: WebhookReceiver) -> None:
    created = cli(stack, "create", receiver.url(), "--status", "SUCCEEDED", "--description", "cli")
    assert created.returncode == 0, created.stderr
    endpoint = json.loads(created.stdout)
    receiver.secrets = [endpoint["secret"]]
    try:
        listed = json.loads(cli(stack, "list").stdout)
        assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]

        tested = cli(stack, "test", endpoint["id"])
        assert tested.returncode == 0 and json.loads(tested.stdout)["outcome"] == "delivered"
        [hook] = receiver.wait_for_count(1, timeout=10)
        assert hook.verified and hook.payload["type"] == "webhook.test"

        rotated = json.loads(cli(stack, "rotate-secret", endpoint["id"]).stdout)["secret"]
        assert rotated.startswith("whsec_") and rotated != endpoint["secret"]
        disabled = json.loads(cli(stack, "update", endpoint["id"], "--disable").stdout)
        assert disabled["enabled"] is False and disabled["disabled_reason"]

        page = json.loads(cli(stack, "deliveries", endpoint["id"], "--limit", "5").stdout)
        assert page == {"items": [], "next": None}  # a test event is not a delivery of a change
        refused = cli(stack, "replay", endpoint["id"], "--since", "2020-01-01T00:00:00Z")
        assert refused.returncode == 2 and "disabled" in refused.stderr
        unknown = cli(stack, "get", "ep_" + "0" * 20)
        assert unknown.returncode == 2 and "not found" in unknown.stderr.lower()
        bad = cli(stack, "create", "http://169.254.169.254/")
        assert bad.returncode == 2 and "refused" in bad.stderr.lower()
        assert stack.api_key not in created.stderr + tested.stdout + tested.stderr
    finally:
        assert cli(stack, "delete", endpoint["id"]).returncode == 0
    receiver.assert_all_verified()
