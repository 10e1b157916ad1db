"""End-to-end fixtures: real local stacks (child processes on random free ports) built from
template.yaml or from a test copy of it, and small clients for them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.sync.client import ClientConnection, connect

from taskcast.local.testing import RunningStack, running_stack
from tests.conftest import TENANTS
from tests.e2e.support.templates import SUPPORT_DIR, add_machinery_probes, shorten_worker_timeout, write_template
from tests.support.shared import mark_tests_below

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tests_below(_HERE, items, pytest.mark.e2e)

# Webhook retries in fractions of a second, so a failing receiver shows its outcome within a test; a
# tenant may hold two of the local delivery pollers (four) at most.
FAST_WEBHOOKS = {
    "TASKCAST_WEBHOOK_RETRY_SCHEDULE": "0.2,0.5",
    "TASKCAST_WEBHOOK_TIMEOUT": "5",
    "TASKCAST_WEBHOOK_TENANT_CONCURRENCY": "2",
}


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    """The project's template as it is, with the test tenants (acme, globex)."""
    with running_stack(tenants=TENANTS, environment=FAST_WEBHOOKS) as running:
        yield running


@pytest.fixture(scope="module")
def probe_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The template plus probe tables, queues, routes and functions (``support/dummy_functions.py``),
    with short gateway limits so that the timeouts show in seconds (the integration timeout of 6 s also
    covers a cold start on a loaded machine)."""
    template = write_template(tmp_path_factory.mktemp("probe") / "template.yaml", add_machinery_probes)
    with running_stack(
        template=template, tenants=TENANTS, python_path=[SUPPORT_DIR], environment=FAST_WEBHOOKS,
        integration_timeout_s=6, async_retry_delays_s=[0.2], ws_idle_timeout_s=2, ws_max_duration_s=4,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def short_worker_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The template with the worker's timeout cut to 2 s."""
    template = write_template(tmp_path_factory.mktemp("worker") / "template.yaml", shorten_worker_timeout)
    with running_stack(template=template, tenants=TENANTS) as running:
        yield running


class Api:
    """A REST client for one tenant of a running stack."""

    def __init__(self, stack: RunningStack, api_key: str) -> None:
        self.base = stack.http_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    def create(self, job_type: str, job_input: Any, **extra: Any) -> dict[str, Any]:
        answer = self.session.post(f"{self.base}/tasks", json={"type": job_type, "input": job_input, **extra},
                                   timeout=30)
        assert answer.status_code == 202, answer.text
        return answer.json()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(f"{self.base}{path}", timeout=30, allow_redirects=False, **kwargs)

    def wait_terminal(self, task_id: str, within_s: float = 30) -> dict[str, Any]:
        """Long-polls ``GET /tasks/{id}?wait=`` until the task is finished."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            answer = self.get(f"/tasks/{task_id}", params={"wait": 5})
            if answer.status_code == 303 or answer.json().get("status") in {"SUCCEEDED", "FAILED", "CANCELLED"}:
                return self.get(f"/tasks/{task_id}/events").json()[-1]
        raise AssertionError(f"task {task_id} did not finish within {within_s} s")


@pytest.fixture
def api(stack: RunningStack) -> Api:
    return Api(stack, TENANTS["acme"]["api_key"])


@pytest.fixture
def websocket(stack: RunningStack) -> Iterator[Callable[..., ClientConnection]]:
    """Opens WebSocket connections to the stack (closed after the test)."""
    with ExitStack() as opened:

        def open_connection(api_key: str | None = None, stack_: RunningStack | None = None) -> ClientConnection:
            target = stack_ or stack
            url = target.websocket_url(api_key or TENANTS["acme"]["api_key"])
            return opened.enter_context(connect(url, open_timeout=15))

        yield open_connection


def receive_json(connection: ClientConnection, timeout_s: float = 15.0) -> dict[str, Any]:
    return json.loads(connection.recv(timeout=timeout_s))


def statuses_until_terminal(connection: ClientConnection, task_id: str, timeout_s: float = 30.0) -> list[dict]:
    """``task.status`` messages of ``task_id`` (repeats dropped by version) up to the terminal one."""
    seen: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = receive_json(connection, max(0.1, deadline - time.monotonic()))
        if message.get("type") != "task.status" or message.get("task_id") != task_id:
            continue
        seen.setdefault(message["version"], message)
        if message["status"] in {"SUCCEEDED", "FAILED", "CANCELLED"}:
            return [seen[version] for version in sorted(seen)]
    raise AssertionError(f"no terminal status for {task_id} within {timeout_s} s; saw {sorted(seen)}")


def probe_items(stack: RunningStack, pk: str) -> list[dict[str, Any]]:
    dynamodb = stack.client("dynamodb")
    answer = dynamodb.query(TableName=stack.table_name("ProbeTable"), KeyConditionExpression="pk = :pk",
                            ExpressionAttributeValues={":pk": {"S": pk}}, ConsistentRead=True)
    return [{key: next(iter(value.values())) for key, value in item.items()} for item in answer["Items"]]


def eventually(check: Callable[[], Any], within_s: float = 20.0, every_s: float = 0.1) -> Any:
    """Polls ``check`` until it returns something truthy: for state that lives in another process
    and offers no event to wait on (the probe table)."""
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s (last: {result!r})")
        time.sleep(every_s)

