"""The Python client, the ``taskcast submit`` command and the webhook receiver against a real local stack."""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskcast_client.client import TaskcastClient
from taskcast_client.webhooks import Delivery, WebhookReceiver

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    from taskcast.local.testing import running_stack

    with running_stack() as running:
        yield running


@pytest.fixture
def client(stack: Any) -> TaskcastClient:
    return TaskcastClient(stack.http_url, stack.api_key)


def status_polls(stack: Any, task_id: str) -> list[dict[str, Any]]:
    return [e for e in stack.request_log if e["method"] == "GET" and e["path"] == f"/tasks/{task_id}"]


def taskcast_command() -> list[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).with_name("taskcast")
    return [str(script)] if script.is_file() else [shutil.which("taskcast") or "taskcast"]


def test_the_client_follows_a_task_by_push(stack: Any, client: TaskcastClient) -> None:
    updates: list[dict[str, Any]] = []

    handle = client.submit("sleep", {"seconds": 1, "steps": 2})
    outcome = handle.wait(timeout=30, on_update=updates.append)

    assert outcome.transport == "websocket"
    assert outcome.status == "SUCCEEDED"
    assert outcome.result == {"slept_s": 1, "steps": 2}
    assert [u["version"] for u in updates] == list(range(2, outcome.version + 1))
    assert status_polls(stack, handle.id) == []
    assert [e["version"] for e in handle.events()] == list(range(1, outcome.version + 1))


def test_the_client_long_polls_when_the_websocket_is_unreachable(stack: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    client = TaskcastClient(stack.http_url, stack.api_key, websocket_url=f"ws://127.0.0.1:{closed}")

    handle = client.submit("sleep", {"seconds": 1, "steps": 1})
    outcome = handle.wait(timeout=30)

    assert outcome.transport == "polling"
    assert outcome.status == "SUCCEEDED" and outcome.result == {"slept_s": 1, "steps": 1}
    polls = status_polls(stack, handle.id)
    assert polls and all("wait=" in poll["query"] for poll in polls)  # long-polls, not plain reads


def test_the_client_reports_a_failed_task(client: TaskcastClient) -> None:
    outcome = client.submit("fail", {"message": "disk full"}).wait(timeout=30)

    assert outcome.status == "FAILED"
    assert outcome.error["type"].endswith("/job-failed")
    assert "disk full" in json.dumps(outcome.error)


def test_submit_wait_prints_the_result_and_exits_0(stack: Any) -> None:
    env = {**os.environ, "TASKCAST_URL": stack.http_url, "TASKCAST_API_KEY": stack.api_key}

    finished = subprocess.run(
        [*taskcast_command(), "submit", "sleep", "--input", '{"seconds": 1}', "--wait"],
        env=env, capture_output=True, text=True, timeout=60,
    )

    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout) == {"slept_s": 1, "steps": 1}
    assert "100%  SUCCEEDED" in finished.stderr
    assert "updates via websocket" in finished.stderr
    assert stack.api_key not in finished.stderr + finished.stdout


def test_submit_wait_of_a_failing_task_exits_1(stack: Any) -> None:
    env = {**os.environ, "TASKCAST_URL": stack.http_url, "TASKCAST_API_KEY": stack.api_key}

    finished = subprocess.run(
        [*taskcast_command(), "submit", "fail", "--wait"], env=env, capture_output=True, text=True, timeout=60,
    )

    assert finished.returncode == 1, finished.stderr
    assert json.loads(finished.stdout)["type"].endswith("/job-failed")
    assert "Traceback" not in finished.stderr


def test_the_webhook_receiver_verifies_real_deliveries(stack: Any, client: TaskcastClient) -> None:
    received: queue.Queue[Delivery] = queue.Queue()
    lines: list[str] = []

    class Lines:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    with WebhookReceiver(stack.webhook_secret, on_delivery=received.put, out=Lines()) as receiver:
        handle = client.submit("sleep", {"seconds": 0.5, "steps": 1}, callback_url=receiver.url)
        outcome = handle.wait(timeout=30)
        versions: set[int] = set()
        # First attempts go through the delivery queue and may arrive in any order: wait for every version.
        while not set(range(1, outcome.version + 1)) <= versions:
            delivery = received.get(timeout=30)
            assert delivery.data["task_id"] == handle.id
            assert delivery.webhook_id == f"{handle.id}.{delivery.data['version']}"
            versions.add(delivery.data["version"])

    assert versions == set(range(1, outcome.version + 1))
    assert f"{handle.id}.{outcome.version}  {handle.id}  SUCCEEDED  v{outcome.version}\n" in lines


def test_the_client_falls_back_to_polling_when_the_websocket_goes_away(stack: Any, client: TaskcastClient) -> None:
    updates: list[dict[str, Any]] = []

    def on_update(message: dict[str, Any]) -> None:
        updates.append(message)
        if len(updates) == 1:
            stack.stop_websocket()  # closes this very connection, and the port, mid-task

    handle = client.submit("sleep", {"seconds": 3, "steps": 3})
    try:
        outcome = handle.wait(timeout=60, on_update=on_update)
    finally:
        stack.start_websocket()

    assert outcome.transport == "polling"
    assert outcome.status == "SUCCEEDED"
    versions = [u["version"] for u in updates]
    assert versions == sorted(set(versions)) and versions[-1] == outcome.version
    assert status_polls(stack, handle.id)
