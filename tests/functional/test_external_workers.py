"""External workers through the REST handler on moto: the job message with its token, reports with the token
alone (no tenant), refusals that leak nothing, cancellation, and the heartbeat timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
import requests.adapters

from handlers import worker_failure
from taskcast.settings import Settings
from taskcast.store import Heartbeats
from taskcast.worker_failure_consumer import WorkerFailureDeps
from taskcast_client import Report, TaskcastError, TaskEnded, WorkerClient
from tests.functional.rest_harness import FakeLambdaContext, Reply, RestHarness
from tests.functional.test_worker_failure import sqs_event

HEARTBEAT_S = 1


@pytest.fixture
def queues(aws_mock: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:  # noqa: ARG001
    sqs = boto3.client("sqs")
    urls = {
        "jobs": sqs.create_queue(QueueName="taskcast-external-jobs")["QueueUrl"],
        "failures": sqs.create_queue(QueueName="taskcast-worker-failures")["QueueUrl"],
    }
    monkeypatch.setenv("EXTERNAL_JOBS_QUEUE_URL", urls["jobs"])
    monkeypatch.setenv("WORKER_FAILURE_QUEUE_URL", urls["failures"])
    return urls


@pytest.fixture
def api(dynamodb: None, settings: Settings, queues: dict[str, str]) -> Iterator[RestHarness]:  # noqa: ARG001
    with RestHarness(Settings.from_env()) as harness:
        harness.registry.external_job("transcode", heartbeat_s=HEARTBEAT_S, description="Transcodes a video.")
        yield harness


def receive(queue_url: str, wait_s: int = 0) -> list[dict[str, Any]]:
    answer = boto3.client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s, MessageAttributeNames=["All"]
    )
    return answer.get("Messages", [])


def handed_off(api: RestHarness, queues: dict[str, str], job_input: Any = None) -> dict[str, Any]:
    """Create a transcode task and take its job message off the queue, as a worker would."""
    created = api.create("transcode", job_input if job_input is not None else {"video": "cat.mp4"})
    assert created.status == 202, created.text
    (message,) = receive(queues["jobs"])
    job = json.loads(message["Body"])
    assert job["task_id"] == created.json()["id"]
    return job


def report(api: RestHarness, token: str, kind: str, body: Any = None) -> Reply:
    # No tenant: these routes have no authorizer, the token is the credential.
    return api.request("POST", f"/task-tokens/{token}/{kind}", tenant=None, json_body=body)


def test_creating_an_external_task_hands_its_worker_a_token_and_nothing_else_runs(
    api: RestHarness, queues: dict[str, str]
) -> None:
    created = api.create("transcode", {"video": "cat.mp4"})
    assert created.status == 202
    monitor = created.json()
    assert monitor["status"] == "PENDING" and monitor["version"] == 1
    (message,) = receive(queues["jobs"])
    job = json.loads(message["Body"])
    assert job == {
        "task_id": monitor["id"], "type": "transcode", "input": {"video": "cat.mp4"}, "token": job["token"],
        "heartbeat_s": HEARTBEAT_S, "created_at": monitor["created_at"],
    }
    assert message["MessageAttributes"]["type"]["StringValue"] == "transcode"
    assert job["token"].startswith(f"tt_{monitor['id']}.")
    assert api.invocations == []  # the Lambda worker never runs an external job
    # Only the secret's hash is stored; the monitor shows neither.
    items = boto3.client("dynamodb").scan(TableName=api.settings.tasks_table)["Items"]
    secret = job["token"].split(".", 1)[1]
    assert secret not in json.dumps(items)
    assert "token" not in json.dumps(api.request("GET", f"/tasks/{monitor['id']}").json())


def test_a_worker_with_the_token_alone_heartbeats_reports_progress_and_succeeds(
    api: RestHarness, queues: dict[str, str]
) -> None:
    job = handed_off(api, queues)
    token, task_id = job["token"], job["task_id"]

    first = report(api, token, "heartbeat")
    assert (first.status, first.json()) == (200, {"status": "RUNNING", "version": 2, "cancel_requested": False})
    again = report(api, token, "heartbeat", {})
    assert again.json()["version"] == 2  # a heartbeat of a running task writes no version
    progress = report(api, token, "progress", {"progress": 40, "message": "pass 1 of 2"})
    assert progress.json() == {"status": "RUNNING", "version": 3, "cancel_requested": False}
    monitor = api.request("GET", f"/tasks/{task_id}").json()
    assert (monitor["progress"], monitor["message"]) == (40, "pass 1 of 2")

    done = report(api, token, "succeed", {"result": {"url": "s3://out/cat.webm", "seconds": 12.5}})
    assert done.json() == {"status": "SUCCEEDED", "version": 4, "cancel_requested": False}
    status = api.request("GET", f"/tasks/{task_id}")
    assert status.status == 303 and status.header("Location") == f"/tasks/{task_id}/result"
    assert api.request("GET", f"/tasks/{task_id}/result").json() == {"url": "s3://out/cat.webm", "seconds": 12.5}
    history = api.request("GET", f"/tasks/{task_id}/events").json()
    assert [(entry["version"], entry["status"], entry["progress"]) for entry in history] == [
        (1, "PENDING", 0), (2, "RUNNING", 0), (3, "RUNNING", 40), (4, "SUCCEEDED", 100),
    ]
    # The token dies with its task.
    late = report(api, token, "progress", {"progress": 90})
    assert late.status == 410 and late.json()["cancel_requested"] is False
    assert late.json()["task_status"] == "SUCCEEDED"


def test_a_first_report_that_ends_the_task_still_records_running(api: RestHarness, queues: dict[str, str]) -> None:
    job = handed_off(api, queues)
    failed = report(api, job["token"], "fail", {"problem": {"type": "corrupt-video", "detail": "bad frame 7",
                                                          "frame": 7}})
    assert failed.json() == {"status": "FAILED", "version": 3, "cancel_requested": False}
    error = api.request("GET", f"/tasks/{job['task_id']}").json()["error"]
    assert error["type"] == "https://taskcast.dev/problems/corrupt-video"
    assert (error["detail"], error["frame"], error["status"]) == ("bad frame 7", 7, 500)
    history = api.request("GET", f"/tasks/{job['task_id']}/events").json()
    assert [entry["status"] for entry in history] == ["PENDING", "RUNNING", "FAILED"]


def test_forged_malformed_and_other_tasks_tokens_get_one_and_the_same_404(
    api: RestHarness, queues: dict[str, str]
) -> None:
    first, second = handed_off(api, queues), handed_off(api, queues)
    first_secret = first["token"].split(".", 1)[1]
    forged = f"tt_{second['task_id']}.{'A' * 43}"
    other_tasks_secret = f"tt_{second['task_id']}.{first_secret}"
    unknown_task = f"tt_00000000-0000-4000-8000-000000000000.{first_secret}"
    answers = [report(api, token, "succeed", {"result": 1})
               for token in (forged, other_tasks_secret, unknown_task, "not-a-token", f"{first['token']}x")]
    assert {answer.status for answer in answers} == {404}
    assert len({answer.text for answer in answers}) == 1  # nothing tells an existing task from a missing one
    assert answers[0].header("Content-Type") == "application/problem+json"
    assert first_secret not in answers[0].text
    for job in (first, second):
        assert api.request("GET", f"/tasks/{job['task_id']}").json()["version"] == 1  # untouched


def test_a_cancelled_task_answers_its_workers_next_heartbeat_and_refuses_its_result(
    api: RestHarness, queues: dict[str, str]
) -> None:
    job = handed_off(api, queues)
    assert report(api, job["token"], "progress", {"progress": 10}).status == 200
    assert api.request("DELETE", f"/tasks/{job['task_id']}").status == 202

    beat = report(api, job["token"], "heartbeat")
    assert beat.status == 410
    assert (beat.json()["task_status"], beat.json()["cancel_requested"]) == ("CANCELLED", True)
    refused = report(api, job["token"], "succeed", {"result": "too late"})
    assert refused.status == 410 and refused.json()["cancel_requested"] is True
    monitor = api.request("GET", f"/tasks/{job['task_id']}").json()
    assert (monitor["status"], monitor["version"]) == ("CANCELLED", 3)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("progress", {"progress": 150}),
        ("progress", {}),
        ("progress", {"progress": 5, "extra": True}),
        ("fail", {"problem": {"status": 200}}),
        ("heartbeat", {"progress": 5}),
        ("succeed", {"outcome": 1}),
    ],
)
def test_bad_report_bodies_are_400_problems_and_change_nothing(
    api: RestHarness, queues: dict[str, str], kind: str, body: Any
) -> None:
    job = handed_off(api, queues)
    answer = report(api, job["token"], kind, body)
    assert answer.status == 400 and answer.header("Content-Type") == "application/problem+json", answer.text
    assert api.request("GET", f"/tasks/{job['task_id']}").json()["version"] == 1


def check_messages(queues: dict[str, str], wait_s: int = 0) -> list[dict[str, Any]]:
    return [message for message in receive(queues["failures"], wait_s) if "heartbeat-check" in message["Body"]]


def deliver_checks(api: RestHarness, messages: list[dict[str, Any]], clock: Any = time.time) -> dict[str, Any]:
    deps = WorkerFailureDeps.from_settings(api.settings)
    deps = WorkerFailureDeps(deps.store, heartbeats=deps.heartbeats, checks=deps.checks, clock=clock)
    event = sqs_event(*(message["Body"] for message in messages))
    return worker_failure.lambda_handler(event, FakeLambdaContext("taskcast-worker-failure"), deps)


def test_a_worker_that_stops_heartbeating_fails_its_task_on_time(api: RestHarness, queues: dict[str, str]) -> None:
    job = handed_off(api, queues)
    assert report(api, job["token"], "heartbeat").status == 200
    # The check was sent at the hand-off, delayed by the heartbeat interval: SQS holds it back until then.
    assert check_messages(queues) == []
    started = time.monotonic()
    messages = check_messages(queues, wait_s=HEARTBEAT_S + 2)
    assert len(messages) == 1 and time.monotonic() - started <= HEARTBEAT_S + 2

    assert deliver_checks(api, messages) == {"batchItemFailures": []}
    monitor = api.request("GET", f"/tasks/{job['task_id']}").json()
    assert monitor["status"] == "FAILED"
    assert monitor["error"]["type"] == "https://taskcast.dev/problems/heartbeat-timeout"
    assert monitor["error"]["heartbeat_s"] == HEARTBEAT_S
    late = report(api, job["token"], "heartbeat")
    assert late.status == 410 and late.json()["task_status"] == "FAILED"


def test_a_check_that_finds_a_recent_beat_is_sent_on_to_the_new_deadline(
    api: RestHarness, queues: dict[str, str]
) -> None:
    job = handed_off(api, queues)
    messages = check_messages(queues, wait_s=HEARTBEAT_S + 2)
    assert report(api, job["token"], "heartbeat").status == 200
    last_beat = Heartbeats(api.settings.tasks_table).last(job["task_id"])
    assert last_beat is not None

    assert deliver_checks(api, messages, clock=lambda: last_beat + HEARTBEAT_S / 2) == {"batchItemFailures": []}
    monitor = api.request("GET", f"/tasks/{job['task_id']}").json()
    assert (monitor["status"], monitor["version"]) == ("RUNNING", 2)
    (sent_on,) = check_messages(queues, wait_s=HEARTBEAT_S + 2)
    assert json.loads(sent_on["Body"])["not_before"] == pytest.approx(last_beat + HEARTBEAT_S)
    # Once the task has ended, its check is dropped: no failure, nothing sent on.
    assert report(api, job["token"], "succeed", {"result": None}).status == 200
    assert deliver_checks(api, [sent_on]) == {"batchItemFailures": []}
    assert api.request("GET", f"/tasks/{job['task_id']}").json()["status"] == "SUCCEEDED"
    assert check_messages(queues, wait_s=0) == []


def test_the_openapi_document_describes_the_token_routes_without_the_api_key(api: RestHarness) -> None:
    document = api.request("GET", "/openapi.json", tenant=None).json()
    for kind in ("progress", "heartbeat", "succeed", "fail"):
        operation = document["paths"][f"/task-tokens/{{token}}/{kind}"]["post"]
        assert operation["security"] == []
        assert "401" not in operation["responses"] and "410" in operation["responses"]
    assert "transcode" in document["x-taskcast-jobs"]


class HandlerAdapter(requests.adapters.BaseAdapter):
    """Sends a requests session's calls to the REST handler, as API Gateway would (no authorizer: these routes
    have none), so the SDK's WorkerClient is tested against the real routes."""

    def __init__(self, api: RestHarness) -> None:
        super().__init__()
        self.api = api

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # noqa: ARG002
        path = urlsplit(request.url or "").path
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        reply = self.api.request(request.method or "POST", path, tenant=None, body=body)
        response = requests.Response()
        response.status_code = reply.status
        response.headers.update(reply.headers)
        response._content = reply.text.encode()
        response.request, response.url = request, request.url or ""
        return response

    def close(self) -> None:
        pass


def test_the_python_worker_client_reports_and_learns_of_cancellation(api: RestHarness, queues: dict[str, str]) -> None:
    session = requests.Session()
    session.mount("http://taskcast.test", HandlerAdapter(api))
    finished, cancelled = handed_off(api, queues), handed_off(api, queues)

    worker = WorkerClient(finished["token"], "http://taskcast.test/", session=session)
    assert finished["token"] not in repr(worker)
    assert worker.heartbeat() is False
    assert worker.progress(50, "half") == Report("RUNNING", 3, False)
    assert worker.succeed({"frames": 10}).status == "SUCCEEDED"
    with pytest.raises(TaskEnded) as ended:
        worker.heartbeat()
    assert not ended.value.cancelled and ended.value.status == 410

    other = WorkerClient(cancelled["token"], "http://taskcast.test", session=session)
    assert other.progress(5).version == 2
    assert api.request("DELETE", f"/tasks/{cancelled['task_id']}").status == 202
    assert other.heartbeat() is True  # the answer to its next heartbeat: stop
    with pytest.raises(TaskEnded) as refused:
        other.fail("gave up")
    assert refused.value.cancelled

    forged = WorkerClient(f"tt_{cancelled['task_id']}.{'A' * 43}", "http://taskcast.test", session=session)
    with pytest.raises(TaskcastError) as unknown:
        forged.heartbeat()
    assert unknown.value.status == 404 and unknown.value.type.endswith("/task-token-not-found")


def test_an_external_job_cannot_start_from_an_upload(api: RestHarness) -> None:
    # Such a task would be started by the Lambda worker when its file lands; it is refused up front.
    answer = api.request("POST", "/uploads", json_body={"content_type": "video/mp4", "task": {"type": "transcode"}})
    assert answer.status == 400 and answer.json()["type"].endswith("/external-job-upload"), answer.text


def test_an_input_too_large_for_the_job_message_is_refused_before_anything_is_stored(
    api: RestHarness, queues: dict[str, str]
) -> None:
    answer = api.create("transcode", {"blob": "x" * (255 * 1024)})
    assert answer.status == 413 and answer.json()["type"].endswith("/payload-too-large"), answer.text
    assert "POST /uploads" in answer.json()["detail"]
    assert receive(queues["jobs"]) == []


# ---------------------------------------------------------------------- the other hand-offs
def test_an_eventbridge_hand_off_reaches_the_users_rule_with_the_job_message(api: RestHarness) -> None:
    # The user's side: a rule on the bus for taskcast's external jobs, routed to a queue of theirs.
    events, sqs = boto3.client("events"), boto3.client("sqs")
    theirs = sqs.create_queue(QueueName="their-transcoders")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=theirs, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="transcode-jobs", EventPattern=json.dumps(
        {"source": ["taskcast"], "detail-type": ["taskcast.external-job"], "detail": {"type": ["transcode-eb"]}}))
    events.put_targets(Rule="transcode-jobs", Targets=[{"Id": "queue", "Arn": arn}])
    api.registry.external_job("transcode-eb", heartbeat_s=60, handoff="eventbridge")

    created = api.create("transcode-eb", {"video": "cat.mp4"})

    assert created.status == 202, created.text
    (message,) = receive(theirs)
    event = json.loads(message["Body"])
    assert (event["source"], event["detail-type"]) == ("taskcast", "taskcast.external-job")
    job = event["detail"]
    assert (job["task_id"], job["type"], job["input"]) == (created.json()["id"], "transcode-eb", {"video": "cat.mp4"})
    assert report(api, job["token"], "heartbeat").json()["status"] == "RUNNING"


@pytest.mark.parametrize("allowed", [True, False], ids=["listed", "not-listed"])
def test_a_lambda_hand_off_invokes_only_a_listed_function_with_the_job_message(
    dynamodb: None, queues: dict[str, str], monkeypatch: pytest.MonkeyPatch, allowed: bool  # noqa: ARG001
) -> None:
    from tests.functional.lambda_api_stub import LambdaApiStub

    monkeypatch.setenv("TASKCAST_INVOKABLE_FUNCTIONS", "transcoder" if allowed else "resizer")
    with RestHarness(Settings.from_env()) as api, LambdaApiStub(lambda invocation: (202, {}, b"")) as lambda_api:
        api.registry.external_job("transcode-fn", heartbeat_s=60, handoff="lambda", function="transcoder")
        api.deps.external.jobs.invoker.client = lambda_api.client()  # the seam: Lambda's API, here a stub

        created = api.create("transcode-fn", {"video": "cat.mp4"})

        if not allowed:
            assert created.status == 503
            assert created.json()["type"].endswith("/external-handoff-failed")
            assert lambda_api.invocations == []
            return
        assert created.status == 202, created.text
        (invocation,) = lambda_api.invocations
        assert (invocation.function, invocation.invocation_type) == ("transcoder", "Event")
        assert invocation.payload["task_id"] == created.json()["id"]
        assert report(api, invocation.payload["token"], "heartbeat").json()["status"] == "RUNNING"
        assert receive(queues["jobs"]) == []


def test_a_lambda_hand_off_names_its_function_and_only_it_does() -> None:
    from taskcast.jobs import JobRegistry

    registry = JobRegistry()
    with pytest.raises(ValueError, match="handoff"):
        registry.external_job("no-function", handoff="lambda")
    with pytest.raises(ValueError, match="handoff"):
        registry.external_job("stray-function", function="transcoder")
    with pytest.raises(ValueError, match="handoff must be one of"):
        registry.external_job("carrier-pigeon", handoff="pigeon")  # type: ignore[arg-type]
