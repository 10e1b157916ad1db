"""Signed webhooks end to end: stream consumer → delivery queue (moto SQS) → delivery function → real
receiver on 127.0.0.1 → retries → dead-letter queue, with the delivery log read back from DynamoDB.

The receiver verifies every request with ``standardwebhooks``; the fixture fails the test otherwise.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from taskcast.models import Status
from taskcast.store import DeliveryLog
from taskcast.webhooks.format import WebhookJob
from taskcast.webhooks.retry import DeliveryHandler, handle_deliveries
from tests.conftest import TENANTS
from tests.support.push_env import PushEnv
from tests.support.webhook_receiver import Answer, WebhookReceiver

pytest_plugins = ["tests.support.push_fixtures"]
pytestmark = pytest.mark.timeout(60)


def deliveries(push_env: PushEnv, task_id: str) -> list[dict[str, Any]]:
    return DeliveryLog(push_env.settings.tasks_table).list(task_id)


def outcomes(push_env: PushEnv, task_id: str) -> list[tuple[int, int, str]]:
    return [(entry["version"], entry["attempt"], entry["outcome"]) for entry in deliveries(push_env, task_id)]


def finished(push_env: PushEnv, task_id: str, count: int) -> Any:
    """A condition: the task's log holds ``count`` attempts and the last one is final."""

    def check() -> bool:
        log = deliveries(push_env, task_id)
        return len(log) >= count and log[-1]["outcome"] != "retrying"

    return check


def all_final(push_env: PushEnv, task_id: str, versions: int) -> Any:
    """A condition: each of the task's first ``versions`` versions has a final (not retrying) outcome."""

    def check() -> bool:
        final = {entry["version"] for entry in deliveries(push_env, task_id) if entry["outcome"] != "retrying"}
        return final >= set(range(1, versions + 1))

    return check


def test_every_change_is_posted_signed_in_the_standard_format(push_env: PushEnv, receiver: WebhookReceiver) -> None:
    task = push_env.create_task(callback_url=receiver.url())
    running = push_env.advance(task, Status.RUNNING, progress=10)

    response = push_env.consume()

    assert response.get("batchItemFailures", []) == []
    assert receiver.requests_for("/hooks") == []  # handed off, not sent by the consumer
    push_env.deliver(until=all_final(push_env, task.id, 2))
    first, second = sorted(receiver.wait_for_count(2), key=lambda request: request.version)
    assert [first.webhook_id, second.webhook_id] == [f"{task.id}.1", f"{task.id}.2"]
    assert first.headers["content-type"] == "application/json"
    assert second.payload == {
        "type": "task.status",
        "timestamp": running.updated_at,
        "data": {
            "type": "task.status",
            "task_id": task.id,
            "status": "RUNNING",
            "version": 2,
            "progress": 10,
            "at": running.updated_at,
        },
    }
    assert sorted(outcomes(push_env, task.id)) == [(1, 1, "delivered"), (2, 1, "delivered")]
    assert [entry["status_code"] for entry in deliveries(push_env, task.id)] == [200, 200]
    assert {entry["webhook_id"] for entry in deliveries(push_env, task.id)} == {f"{task.id}.1", f"{task.id}.2"}


def test_a_receiver_failing_twice_gets_the_same_message_three_times(
    push_env: PushEnv, receiver: WebhookReceiver
) -> None:
    receiver.script("/hooks", Answer(500), Answer(503))
    task = push_env.create_task(callback_url=receiver.url())

    assert push_env.consume().get("batchItemFailures", []) == []
    push_env.run_retries(until=finished(push_env, task.id, 3))

    requests = receiver.requests_for("/hooks")
    assert [request.webhook_id for request in requests] == [f"{task.id}.1"] * 3
    assert len({request.body for request in requests}) == 1
    assert [request.answered for request in requests] == [500, 503, 200]
    assert outcomes(push_env, task.id) == [(1, 1, "retrying"), (1, 2, "retrying"), (1, 3, "delivered")]
    assert [entry["status_code"] for entry in deliveries(push_env, task.id)] == [500, 503, 200]
    assert push_env.dead_lettered() == []


def test_a_receiver_failing_forever_ends_in_the_dead_letter_queue(
    push_env: PushEnv, receiver: WebhookReceiver
) -> None:
    receiver.script("/hooks", *[Answer(500)] * 10)
    task = push_env.create_task(callback_url=receiver.url())

    assert push_env.consume().get("batchItemFailures", []) == []
    push_env.run_retries(until=finished(push_env, task.id, 3))

    # Two delays in the schedule: three attempts, then the DLQ.
    assert outcomes(push_env, task.id) == [(1, 1, "retrying"), (1, 2, "retrying"), (1, 3, "failed")]
    assert len(receiver.requests_for("/hooks")) == 3
    [parked] = push_env.dead_lettered()
    assert parked["job"]["task_id"] == task.id and parked["job"]["attempt"] == 3
    assert parked["reason"] == "HTTP 500"
    assert push_env.retry_queue.receive(wait_s=0) == []


def test_410_disables_the_callback_for_later_changes(push_env: PushEnv, receiver: WebhookReceiver) -> None:
    receiver.script("/hooks", Answer(410))
    task = push_env.create_task(callback_url=receiver.url())
    push_env.consume()
    push_env.deliver(until=all_final(push_env, task.id, 1))
    assert outcomes(push_env, task.id) == [(1, 1, "disabled")]

    push_env.advance(task, Status.RUNNING)
    push_env.consume()
    push_env.deliver(until=all_final(push_env, task.id, 2))

    assert len(receiver.requests_for("/hooks")) == 1
    assert outcomes(push_env, task.id) == [(1, 1, "disabled"), (2, 1, "disabled")]
    assert deliveries(push_env, task.id)[1]["status_code"] is None
    assert push_env.retry_queue.receive(wait_s=0) == []


def test_a_redirect_is_not_followed_and_counts_as_a_failure(push_env: PushEnv, receiver: WebhookReceiver) -> None:
    receiver.script("/hooks", Answer(302, {"Location": receiver.url("/elsewhere")}))
    task = push_env.create_task(callback_url=receiver.url())

    push_env.consume()
    push_env.run_retries(until=finished(push_env, task.id, 2))

    assert receiver.requests_for("/elsewhere") == []
    first, second = deliveries(push_env, task.id)
    assert (first["status_code"], first["outcome"]) == (302, "retrying")
    assert "redirect" in first["error"]
    assert (second["status_code"], second["outcome"]) == (200, "delivered")


def test_a_slow_receiver_hits_the_timeout_and_is_retried(push_env: PushEnv, receiver: WebhookReceiver) -> None:
    receiver.script("/hooks", Answer.slow())
    task = push_env.create_task(callback_url=receiver.url())

    push_env.consume()
    push_env.deliver(until=finished(push_env, task.id, 1))
    first = deliveries(push_env, task.id)[0]
    assert (first["status_code"], first["outcome"]) == (None, "retrying")
    assert first["error"].startswith("timeout")

    push_env.run_retries(until=finished(push_env, task.id, 2))
    assert outcomes(push_env, task.id)[-1] == (1, 2, "delivered")


def test_a_replayed_batch_does_not_send_the_webhook_again(push_env: PushEnv, receiver: WebhookReceiver) -> None:
    task = push_env.create_task(callback_url=receiver.url())
    push_env.advance(task, Status.RUNNING)
    event = push_env.stream_event()

    push_env.consume(event)
    push_env.deliver(until=all_final(push_env, task.id, 2))
    push_env.consume(event)
    push_env.deliver(until=push_env.queue_drained)  # the replayed jobs: dropped, not sent

    ids = sorted(request.webhook_id for request in receiver.requests_for("/hooks"))
    assert ids == [f"{task.id}.1", f"{task.id}.2"]
    assert sorted(outcomes(push_env, task.id)) == [(1, 1, "delivered"), (2, 1, "delivered")]


def test_during_a_rotation_every_secret_signs(
    push_env: PushEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = TENANTS["acme"]["webhook_secret"], TENANTS["globex"]["webhook_secret"]
    tenants = {"acme": {"api_key": TENANTS["acme"]["api_key"], "webhook_secrets": [new, old]}}
    monkeypatch.setenv("TASKCAST_TENANTS", json.dumps(tenants))
    push_env.rebuild()
    with WebhookReceiver([old, new]) as both:
        task = push_env.create_task(callback_url=both.url())
        push_env.consume()
        push_env.deliver(until=all_final(push_env, task.id, 1))
        [request] = both.wait_for_count(1)
        both.assert_all_verified()
    assert len(request.headers["webhook-signature"].split(" ")) == 2


def run_retry_handler_once(push_env: PushEnv, handler: DeliveryHandler, context: Any = None) -> dict[str, Any]:
    """Receive what is on the delivery queue and feed it to ``handler`` as the SQS event source would."""
    messages = push_env.retry_queue.receive(wait_s=1)
    assert messages, "nothing on the delivery queue"
    response = handle_deliveries(push_env.retry_queue.event(messages), context, handler)
    push_env.retry_queue.settle(messages, response)
    return response


def test_a_job_due_beyond_the_sqs_maximum_hops_back_to_the_queue(push_env: PushEnv) -> None:
    now = 1_000_000.0
    job = WebhookJob("t-1", "acme", 1, "http://127.0.0.1:9/", "{}", expires_at=0, attempt=2, not_before=now + 7200)
    push_env.retry_queue.client.send_message(QueueUrl=push_env.retry_queue.queue_url, MessageBody=job.to_json())

    handler = dataclasses.replace(push_env.delivery.handler, clock=lambda: now)
    response = run_retry_handler_once(push_env, handler)

    assert response == {"batchItemFailures": []}
    attributes = push_env.retry_queue.client.get_queue_attributes(
        QueueUrl=push_env.retry_queue.queue_url,
        AttributeNames=["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages"],
    )["Attributes"]
    # Back on the queue, delayed (by SQS's maximum), and nothing was sent.
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert deliveries(push_env, "t-1") == []


def test_a_job_arriving_a_moment_early_waits_out_the_remainder(push_env: PushEnv, receiver: WebhookReceiver) -> None:
    now = 2_000_000.0
    waits: list[float] = []
    task = push_env.create_task(callback_url=receiver.url())
    job = WebhookJob(task.id, "acme", 1, receiver.url(), '{"hello":1}', expires_at=0, attempt=2, not_before=now + 0.4)
    push_env.retry_queue.client.send_message(QueueUrl=push_env.retry_queue.queue_url, MessageBody=job.to_json())

    handler = dataclasses.replace(push_env.delivery.handler, clock=lambda: now, sleep=waits.append)
    response = run_retry_handler_once(push_env, handler)

    assert response == {"batchItemFailures": []}
    assert waits == [pytest.approx(0.4)]
    [request] = receiver.requests_for("/hooks")
    assert request.body == b'{"hello":1}'
    assert outcomes(push_env, task.id) == [(1, 2, "delivered")]


def test_a_message_that_is_not_a_job_goes_to_the_dead_letter_queue(push_env: PushEnv) -> None:
    push_env.retry_queue.client.send_message(QueueUrl=push_env.retry_queue.queue_url, MessageBody="not a job")

    response = run_retry_handler_once(push_env, push_env.delivery.handler)

    assert response == {"batchItemFailures": []}
    [parked] = push_env.dead_lettered()
    assert parked["job"] is None and parked["raw"] == "not a job"


