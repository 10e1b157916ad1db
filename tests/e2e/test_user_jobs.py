"""A user's job on the local stack: ``examples/report_jobs`` named by ``TASKCAST_JOB_MODULES`` and put on the
functions' path with ``TASKCAST_LOCAL_FUNCTION_PYTHONPATH``, as docs/jobs.md tells a user to run it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from taskcast.local.testing import RunningStack, running_stack
from tests.conftest import TENANTS
from tests.e2e.conftest import Api, statuses_until_terminal

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "report_jobs"


@pytest.fixture(scope="module")
def user_jobs_stack() -> Iterator[RunningStack]:
    environment = {"TASKCAST_JOB_MODULES": "report_jobs.render", "TASKCAST_LOCAL_FUNCTION_PYTHONPATH": str(EXAMPLE)}
    with running_stack(tenants=TENANTS, environment=environment) as running:
        yield running


def test_a_user_job_runs_on_the_local_stack_over_http(user_jobs_stack: RunningStack) -> None:
    api = Api(user_jobs_stack, TENANTS["acme"]["api_key"])
    refused = api.session.post(f"{api.base}/tasks", json={"type": "render-report", "input": {"title": "Q3"}},
                               timeout=30)
    assert refused.status_code == 400, refused.text
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "input.sections" in refused.json()["detail"]

    task = api.create("render-report", {"title": "Q3", "sections": [[1, 2], [3]]})
    # Its progress is pushed as any task's: every version over the WebSocket (history first, then live).
    with connect(user_jobs_stack.websocket_url(TENANTS["acme"]["api_key"]), open_timeout=15) as connection:
        connection.send(json.dumps({"action": "subscribe", "task_id": task["id"], "since_version": 0}))
        pushed = statuses_until_terminal(connection, task["id"])
    assert [(message["status"], message["progress"]) for message in pushed] == [
        ("PENDING", 0), ("RUNNING", 0), ("RUNNING", 50), ("SUCCEEDED", 100),
    ]
    assert api.wait_terminal(task["id"])["status"] == "SUCCEEDED"
    assert api.get(f"/tasks/{task['id']}/result").json() == {"title": "Q3", "totals": [3, 3], "total": 6}
    progress = [entry["progress"] for entry in api.get(f"/tasks/{task['id']}/events").json()]
    assert progress == [0, 0, 50, 100]

    document = api.get("/openapi.json").json()
    assert document["x-taskcast-jobs"]["render-report"]["input"] == {
        "$ref": "#/components/schemas/JobInput.ReportInput"
    }
