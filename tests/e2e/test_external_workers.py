"""External workers on the local stack: a worker (a thread of the test speaking only HTTP, plus SQS through
boto3 against the stack's moto) takes its task off the queue the template creates, heartbeats, reports
progress and succeeds while a WebSocket client sees every version; a silent worker's task times out."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from websockets.sync.client import connect

from taskcast.local.testing import RunningStack, running_stack
from taskcast_client import WorkerClient
from tests.conftest import TENANTS
from tests.e2e.conftest import Api, receive_json, statuses_until_terminal
from tests.e2e.support.templates import SUPPORT_DIR


@pytest.fixture(scope="module")
def external_stack() -> Iterator[RunningStack]:
    environment = {"TASKCAST_JOB_MODULES": "external_jobs", "TASKCAST_LOCAL_FUNCTION_PYTHONPATH": str(SUPPORT_DIR)}
    with running_stack(tenants=TENANTS, environment=environment) as running:
        yield running


def take_job(stack: RunningStack, task_id: str, within_s: float = 20.0) -> dict[str, Any]:
    """What a worker does: receive from the external jobs queue until its task comes, then delete it."""
    sqs, queue_url = stack.client("sqs"), stack.queue_url("ExternalJobsQueue")
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", []):
            job = json.loads(message["Body"])
            if job["task_id"] == task_id:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                return job
    raise AssertionError(f"no job message for {task_id} within {within_s} s")


def run_worker(stack: RunningStack, task_id: str, outcome: dict[str, Any]) -> None:
    job = take_job(stack, task_id)
    http = requests.Session()  # no API key: the token is the credential
    base = f"{stack.http_url}/task-tokens/{job['token']}"
    outcome["token"] = job["token"]
    outcome["answers"] = [
        http.post(f"{base}/heartbeat", timeout=30).json(),
        http.post(f"{base}/progress", json={"progress": 50, "message": "half"}, timeout=30).json(),
        http.post(f"{base}/succeed", json={"result": {"frames": 24}}, timeout=30).json(),
    ]


def test_an_external_worker_takes_its_task_from_the_queue_and_every_report_is_pushed(
    external_stack: RunningStack,
) -> None:
    api = Api(external_stack, TENANTS["acme"]["api_key"])
    task = api.create("e2e-transcode", {"video": "cat.mp4"})
    with connect(external_stack.websocket_url(TENANTS["acme"]["api_key"]), open_timeout=15) as connection:
        connection.send(json.dumps({"action": "subscribe", "task_id": task["id"]}))
        first = receive_json(connection)
        assert (first["type"], first["version"], first["status"]) == ("task.status", 1, "PENDING")
        outcome: dict[str, Any] = {}
        worker = threading.Thread(target=run_worker, args=(external_stack, task["id"], outcome), daemon=True)
        worker.start()
        seen = [first, *statuses_until_terminal(connection, task["id"])]
        worker.join(30)
    assert outcome["answers"] == [
        {"status": "RUNNING", "version": 2, "cancel_requested": False},
        {"status": "RUNNING", "version": 3, "cancel_requested": False},
        {"status": "SUCCEEDED", "version": 4, "cancel_requested": False},
    ]
    by_version = {message["version"]: message for message in seen}
    assert [(by_version[v]["status"], by_version[v]["progress"]) for v in sorted(by_version)] == [
        ("PENDING", 0), ("RUNNING", 0), ("RUNNING", 50), ("SUCCEEDED", 100),
    ]
    assert api.get(f"/tasks/{task['id']}").status_code == 303
    assert api.get(f"/tasks/{task['id']}/result").json() == {"frames": 24}
    # The token is spent with its task; a forged one is unknown; neither reached the request log.
    spent = requests.post(f"{external_stack.http_url}/task-tokens/{outcome['token']}/heartbeat", timeout=30)
    assert spent.status_code == 410 and spent.json()["task_status"] == "SUCCEEDED"
    forged = requests.post(f"{external_stack.http_url}/task-tokens/tt_{task['id']}.{'A' * 43}/heartbeat",
                           timeout=30)
    assert forged.status_code == 404
    assert outcome["token"] not in json.dumps(external_stack.request_log)


def test_a_task_whose_worker_never_reports_fails_on_time(external_stack: RunningStack) -> None:
    api = Api(external_stack, TENANTS["acme"]["api_key"])
    started = time.monotonic()
    task = api.create("e2e-silent", {})
    ended = api.wait_terminal(task["id"], within_s=30)
    elapsed = time.monotonic() - started
    assert ended["status"] == "FAILED"
    assert ended["error"]["type"] == "https://taskcast.dev/problems/heartbeat-timeout"
    # Its deadline is 2 s after the hand-off; the delayed check and the queue's polling add a few seconds.
    assert 2 <= elapsed <= 20, elapsed


def test_an_external_worker_uploads_a_large_result_through_the_local_s3_front(external_stack: RunningStack) -> None:
    api = Api(external_stack, TENANTS["acme"]["api_key"])
    task = api.create("e2e-transcode", {"video": "cat.mp4"})
    job = take_job(external_stack, task["id"])
    worker = WorkerClient(job["token"], external_stack.http_url)
    result = {"frames": ["x" * 100] * 5000}  # 500 KB: over the inline limit of a request body
    # The presigned PUT goes to the local S3 front, which checks its signature and expiry as S3 does.
    key = worker.upload_result(result)
    assert key.startswith(f"results/acme/{task['id']}/")
    assert worker.succeed(result_key=key).status == "SUCCEEDED"
    assert api.get(f"/tasks/{task['id']}").status_code == 303
    answer = api.get(f"/tasks/{task['id']}/result")
    assert answer.status_code == 303
    fetched = requests.get(answer.headers["Location"], timeout=30)  # no Authorization: the URL is presigned
    assert fetched.status_code == 200 and fetched.json() == result
    late = requests.post(f"{external_stack.http_url}/task-tokens/{job['token']}/result-upload", timeout=30)
    assert late.status_code == 410  # the token died with its task
