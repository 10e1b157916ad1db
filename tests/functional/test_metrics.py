"""The functions publish CloudWatch EMF metrics about what they really did.

The flows are real (moto tables and queues, a real ``@connections`` server, a real webhook receiver);
each test injects its own ``EmfMetrics`` so no other test's counts can leak in, and reads back the
EMF documents Powertools prints to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from handlers import worker, worker_failure
from taskcast import metrics as names
from taskcast.jobs import JobContext, default_registry
from taskcast.metrics import EmfMetrics, default_metrics
from taskcast.models import Status, Task, transition
from taskcast.push.batch import handle_batch
from taskcast.push.deps import DeliveryDeps, PushDeps
from taskcast.settings import Settings
from taskcast.store import DeliveryLog, TaskStore
from taskcast.webhooks.retry import handle_deliveries
from taskcast.worker_failure_consumer import WorkerFailureDeps
from taskcast.worker_runtime import WorkerDeps, claim
from tests.conftest import TENANTS
from tests.functional.rest_harness import FakeLambdaContext
from tests.functional.test_worker_failure import destination_record, sqs_event
from tests.support.push_env import PushEnv
from tests.support.webhook_receiver import Answer, WebhookReceiver
from tests.uploads.conftest import BUCKET, UploadHarness, s3_event

pytest_plugins = ["tests.support.push_fixtures"]
pytestmark = pytest.mark.timeout(60)

NAMESPACE = "taskcast-test"

Key = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture(autouse=True)
def emf_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "taskcast")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)


@pytest.fixture
def metered(push_env: PushEnv) -> Iterator[PushDeps]:
    """A push path of its own whose counts go to a fresh sink."""
    push = PushDeps.from_settings(push_env.settings, metrics=EmfMetrics())
    yield push
    push.close()


@pytest.fixture
def metered_delivery(push_env: PushEnv) -> DeliveryDeps:
    """A delivery function of its own whose counts go to a fresh sink (a cap that no job here reaches)."""
    settings = dataclasses.replace(push_env.settings, webhook_tenant_concurrency=10)
    return DeliveryDeps.from_settings(settings, metrics=EmfMetrics())


def emf_documents(output: str) -> list[dict[str, Any]]:
    documents = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def totals(documents: list[dict[str, Any]]) -> Counter[Key]:
    """Every metric's value summed over the documents, keyed by name and its dimensions but ``service``."""
    summed: Counter[Key] = Counter()
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        (dimension_names,) = directive["Dimensions"]
        assert "service" in dimension_names and document["service"] == "taskcast"
        dimensions = tuple(sorted((name, document[name]) for name in dimension_names if name != "service"))
        for metric in directive["Metrics"]:
            assert metric["Unit"] == "Count"
            values = document[metric["Name"]]
            summed[(metric["Name"], dimensions)] += sum(values) if isinstance(values, list) else values
    return summed


def published(capsys: pytest.CaptureFixture[str]) -> tuple[Counter[Key], str]:
    output = capsys.readouterr().out
    return totals(emf_documents(output)), output


def webhook_log_done(push_env: PushEnv, task_id: str, attempts: int) -> Any:
    def check() -> bool:
        log = DeliveryLog(push_env.settings.tasks_table).list(task_id)
        return len(log) >= attempts and log[-1]["outcome"] != "retrying"

    return check


def test_a_stream_batch_emits_fanout_and_webhook_metrics(
    push_env: PushEnv,
    metered: PushDeps,
    metered_delivery: DeliveryDeps,
    receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    receiver.script("/broken", Answer(500), Answer(500), Answer(500))
    receiver.script("/gone", Answer(410))
    fine = push_env.create_task(callback_url=receiver.url("/fine"))
    broken = push_env.create_task(callback_url=receiver.url("/broken"))
    gone = push_env.create_task(callback_url=receiver.url("/gone"))
    staying, leaving = push_env.connections.connect(), push_env.connections.connect()
    for connection in (staying, leaving):
        push_env.subscribe(connection, fine.id)
    push_env.connections.disconnect(leaving)  # closed without a $disconnect reaching us
    push_env.connections.throttle(staying, 1)
    running = push_env.advance(fine, Status.RUNNING)
    push_env.advance(running, Status.SUCCEEDED, result={"ok": True})
    capsys.readouterr()  # only what the consumer and the delivery function print counts

    event = push_env.stream_event()
    response = handle_batch(event, None, metered)
    assert response.get("batchItemFailures", []) == []
    # First attempts from the delivery queue; the broken receiver's job: attempts 2 and 3, then the DLQ.
    done = [webhook_log_done(push_env, broken.id, 3), webhook_log_done(push_env, gone.id, 1)]
    done += [webhook_log_done(push_env, fine.id, 3)]
    push_env.retry_queue.run(
        lambda batch, context: handle_deliveries(batch, context, metered_delivery.handler),
        lambda: all(check() for check in done),
    )

    counts, output = published(capsys)
    assert len(event["Records"]) == 5  # three tasks created, one of them RUNNING then SUCCEEDED
    assert counts == {
        (names.STREAM_RECORDS, ()): 5,
        (names.STATUS_CHANGES, (("Status", "PENDING"),)): 3,
        (names.STATUS_CHANGES, (("Status", "RUNNING"),)): 1,
        (names.STATUS_CHANGES, (("Status", "SUCCEEDED"),)): 1,
        # v1 was in the subscribe snapshot; v2 and v3 went to the staying connection only.
        (names.WEBSOCKET_POSTS, ()): 2,
        (names.GONE_CONNECTIONS, ()): 1,
        (names.WEBSOCKET_POST_RETRIES, ()): 1,
        (names.WEBHOOK_ATTEMPTS, (("Outcome", "delivered"),)): 3,
        (names.WEBHOOK_ATTEMPTS, (("Outcome", "retrying"),)): 2,
        (names.WEBHOOK_ATTEMPTS, (("Outcome", "failed"),)): 1,
        (names.WEBHOOK_ATTEMPTS, (("Outcome", "disabled"),)): 1,
        (names.WEBHOOK_DEAD_LETTERED, ()): 1,
    }
    assert len(push_env.dead_lettered()) == 1
    # Nothing that identifies a tenant or a receiver, and no secret, goes into a metric.
    documents = "\n".join(json.dumps(document) for document in emf_documents(output))
    for private in ("acme", receiver.base_url, TENANTS["acme"]["webhook_secret"], fine.id):
        assert private not in documents


def test_a_subscriber_throttled_past_the_retries_counts_retries_and_one_failure(
    push_env: PushEnv, metered: PushDeps, capsys: pytest.CaptureFixture[str]
) -> None:
    task = push_env.create_task()
    stuck = push_env.connections.connect()
    push_env.subscribe(stuck, task.id)
    push_env.connections.throttle(stuck, 1000)
    push_env.advance(task, Status.RUNNING)
    capsys.readouterr()

    response = handle_batch(push_env.stream_event(), None, metered)

    assert len(response["batchItemFailures"]) == 1  # the RUNNING change comes back
    counts, _ = published(capsys)
    attempts = metered.poster.attempts
    assert counts == {
        (names.STREAM_RECORDS, ()): 2,
        # v1 (already in the snapshot) was handled; v2 failed, so it is not counted until it succeeds.
        (names.STATUS_CHANGES, (("Status", "PENDING"),)): 1,
        (names.WEBSOCKET_POST_RETRIES, ()): attempts - 1,
        (names.WEBSOCKET_POST_FAILURES, ()): 1,
    }


def test_the_default_push_path_shares_the_process_sink_that_its_handlers_flush(
    push_env: PushEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    default_metrics().drain()  # whatever earlier tests left behind
    assert push_env.push.metrics is default_metrics()
    push_env.create_task()
    capsys.readouterr()

    push_env.consume()  # streams.consumer.lambda_handler, as Lambda calls it

    counts, _ = published(capsys)
    assert counts == {(names.STREAM_RECORDS, ()): 1, (names.STATUS_CHANGES, (("Status", "PENDING"),)): 1}
    assert default_metrics().drain() == {}  # flushed, not kept for the next invocation


# ---------------------------------------------------------------- worker and its failure destination
@pytest.fixture
def store(dynamodb: Any, settings: Any) -> TaskStore:
    return TaskStore(settings.tasks_table)


def put(store: TaskStore, job_type: str, job_input: Any = None) -> Task:
    return store.create(Task(id=str(uuid.uuid4()), tenant="acme", type=job_type, input=job_input))


def test_the_worker_counts_each_finished_task_by_status(store: TaskStore, capsys: pytest.CaptureFixture[str]) -> None:
    registry = default_registry.copy()

    @registry.job("cancelled-meanwhile")
    def cancelled_meanwhile(job_input: Any, ctx: JobContext) -> None:
        store.update(ctx.task_id, lambda task: transition(task, Status.CANCELLED))  # as DELETE /tasks/{id} does
        ctx.progress(50)  # finds the task cancelled and stops the job

    deps = WorkerDeps(store=store, registry=registry, sleep=lambda seconds: None, metrics=EmfMetrics())
    tasks = [
        put(store, "sleep", {"seconds": 1, "steps": 1}),
        put(store, "fail", {"message": "no luck"}),
        put(store, "cancelled-meanwhile"),
    ]
    capsys.readouterr()
    for task in [*tasks, tasks[0]]:  # the repeated invocation runs nothing and counts nothing
        worker.lambda_handler({"task_id": task.id}, FakeLambdaContext("taskcast-worker"), deps=deps)

    counts, output = published(capsys)
    assert [store.get(task.id).status for task in tasks] == [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
    assert counts == {
        (names.TASKS_FINISHED, (("Status", "SUCCEEDED"),)): 1,
        (names.TASKS_FINISHED, (("Status", "FAILED"),)): 1,
        (names.TASKS_FINISHED, (("Status", "CANCELLED"),)): 1,
    }
    assert len(emf_documents(output)) == 3  # one flush per invocation that counted something


def test_the_failure_destination_counts_the_tasks_it_marks_failed(
    store: TaskStore, capsys: pytest.CaptureFixture[str]
) -> None:
    overran, crashed = put(store, "sleep"), put(store, "sleep")
    for task in (overran, crashed):
        store.update(task.id, claim)
    event = sqs_event(
        json.dumps(destination_record(overran.id, "2025-01-27T16:39:47.617Z abc Task timed out after 3.00 seconds")),
        json.dumps(destination_record(crashed.id, "Runtime exited with error: signal: killed", "Runtime.ExitError")),
    )
    sink = EmfMetrics()
    capsys.readouterr()

    deps = WorkerFailureDeps(store, sink)
    worker_failure.lambda_handler(event, FakeLambdaContext("taskcast-worker-failure"), deps)
    worker_failure.lambda_handler(event, FakeLambdaContext("taskcast-worker-failure"), deps)

    counts, _ = published(capsys)
    assert [store.get(task.id).status for task in (overran, crashed)] == [Status.FAILED, Status.FAILED]
    # The second delivery finds both tasks already FAILED: nothing more is counted.
    assert counts == {
        (names.WORKER_FAILURES_HANDLED, (("Cause", "timeout"),)): 1,
        (names.WORKER_FAILURES_HANDLED, (("Cause", "crash"),)): 1,
    }


# ---------------------------------------------------------------- upload events
@pytest.fixture
def uploads(dynamodb: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[UploadHarness]:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    queue_url = boto3.client("sqs").create_queue(QueueName="taskcast-upload-events")["QueueUrl"]
    monkeypatch.setenv("PAYLOADS_BUCKET", BUCKET)
    monkeypatch.setenv("UPLOAD_EVENTS_QUEUE_URL", queue_url)
    with UploadHarness(Settings.from_env()) as harness:
        harness.event_deps.metrics = EmfMetrics()
        harness.worker_deps.metrics = EmfMetrics()
        yield harness


def test_the_upload_events_function_counts_arrived_and_expired_uploads(
    uploads: UploadHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    declared = [uploads.declare("text/plain", size=2, task={"type": "digest"}).json() for _ in range(2)]
    arriving, missing = declared
    uploads.put_object(arriving, b"ok")
    landed = s3_event(f"uploads/acme/{arriving['upload_id']}", 2)
    stored = uploads.uploads.get(missing["upload_id"])
    due = stored.url_expires_at + uploads.settings.upload_grace_s
    deadline = json.dumps(
        {"kind": "upload-deadline", "upload_id": stored.id, "task_id": missing["task"]["id"], "not_before": due}
    )
    uploads.event_deps.clock = lambda: due
    capsys.readouterr()

    uploads.deliver(landed, deadline)
    assert uploads.run_invoked_workers() == [arriving["task"]["id"]]
    uploads.deliver(landed, deadline)  # repeated: nothing waits any more

    counts, _ = published(capsys)
    assert uploads.invocations == []
    assert uploads.store.get(arriving["task"]["id"]).status is Status.SUCCEEDED
    assert uploads.store.get(missing["task"]["id"]).status is Status.FAILED
    assert counts == {
        (names.UPLOADS_ARRIVED, ()): 1,
        (names.UPLOADS_EXPIRED, ()): 1,
        (names.TASKS_FINISHED, (("Status", "SUCCEEDED"),)): 1,  # the worker the upload started
    }


def test_turned_off_metrics_print_nothing_and_a_bad_metric_never_fails_the_flush(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = EmfMetrics()
    sink.count(names.STREAM_RECORDS, 3)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    sink.flush()
    assert capsys.readouterr().out == ""
    assert sink.drain() == {}  # dropped, not kept for later

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "perhaps")  # Powertools cannot read it: raises inside
    sink.count(names.STREAM_RECORDS, 1)
    sink.flush()
    assert capsys.readouterr().out == ""

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED")
    sink.count("x" * 300, 1)  # over CloudWatch's name limit: Powertools refuses it
    sink.count(names.STREAM_RECORDS, 2)
    sink.flush()
    counts, _ = published(capsys)
    assert counts == {(names.STREAM_RECORDS, ()): 2}
