"""Webhook delivery that no tenant can stall: the consumer only hands jobs off, attempts run concurrently
under a per-tenant cap and a hard deadline, untried jobs go back on the queue (never to the DLQ), and an
endpoint that keeps failing is left alone by its circuit breaker.

Real receivers on 127.0.0.1 (every request verified with ``standardwebhooks``), moto SQS and DynamoDB.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from taskcast.store import Breakers, DeliveryLog
from taskcast.webhooks.delivery import WebhookSender
from taskcast.webhooks.format import WebhookJob, signed_headers
from taskcast.webhooks.retry import handle_deliveries
from tests.conftest import TENANTS
from tests.support.push_env import PushEnv
from tests.support.webhook_receiver import Answer, WebhookReceiver

pytest_plugins = ["tests.support.push_fixtures"]
pytestmark = pytest.mark.timeout(60)

HOLD = Answer(hold_s=30.0, kind="timeout")  # accepts, reads the request, never answers


@pytest.fixture
def black_hole() -> Iterator[WebhookReceiver]:
    """globex's receiver: every request is held open and never answered."""
    with WebhookReceiver(TENANTS["globex"]["webhook_secret"]) as server:
        server.script("/hooks", *[HOLD] * 50)
        yield server
        server.assert_all_verified()


def configure(push_env: PushEnv, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    push_env.rebuild()


def take_messages(push_env: PushEnv, count: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(messages) < count and time.monotonic() < deadline:
        messages += push_env.retry_queue.receive(wait_s=1, max_messages=min(10, count - len(messages)))
    assert len(messages) == count
    return messages


def jobs_on_queue(push_env: PushEnv) -> list[WebhookJob]:
    """Everything on the delivery queue, delayed messages included (moto's view)."""
    attributes = push_env.retry_queue.client.get_queue_attributes(
        QueueUrl=push_env.retry_queue.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    total = int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesDelayed"])
    if total == 0:
        return []
    return [WebhookJob.from_json(message["Body"]) for message in take_messages_any_delay(push_env, total)]


def take_messages_any_delay(push_env: PushEnv, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    messages: list[dict[str, Any]] = []
    while len(messages) < count and time.monotonic() < deadline:
        messages += push_env.retry_queue.receive(wait_s=1, max_messages=10)
    return messages


def log_of(push_env: PushEnv, task_id: str) -> list[dict[str, Any]]:
    return DeliveryLog(push_env.settings.tasks_table).list(task_id)


class Remaining:
    """A Lambda context with a fixed amount of time left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


def test_the_consumer_hands_off_and_never_calls_a_black_holed_receiver(
    push_env: PushEnv, black_hole: WebhookReceiver
) -> None:
    tasks = [push_env.create_task(tenant="globex", callback_url=black_hole.url()) for _ in range(3)]

    response = push_env.consume()

    assert response.get("batchItemFailures", []) == []
    assert black_hole.requests_for("/hooks") == []  # the consumer called nobody
    jobs = [WebhookJob.from_json(message["Body"]) for message in take_messages(push_env, 3)]
    assert sorted((job.task_id, job.attempt, job.from_stream) for job in jobs) == sorted(
        (task.id, 1, True) for task in tasks
    )


def test_a_hand_off_that_sqs_refuses_fails_only_that_record(
    push_env: PushEnv, receiver: WebhookReceiver
) -> None:
    push_env.create_task(callback_url=receiver.url())
    push_env.create_task()  # no callback: nothing to hand off
    push_env.push.webhook_queue.queue_url = push_env.retry_queue.queue_url + "-missing"

    event = push_env.stream_event()
    response = push_env.consume(event)

    with_callback = event["Records"][0]["dynamodb"]["SequenceNumber"]
    assert response["batchItemFailures"] == [{"itemIdentifier": with_callback}]


def test_a_black_holed_tenant_does_not_hold_back_another_tenants_deliveries(
    push_env: PushEnv, receiver: WebhookReceiver, black_hole: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(push_env, monkeypatch, TASKCAST_WEBHOOK_TIMEOUT="5", TASKCAST_WEBHOOK_TENANT_CONCURRENCY="2")
    stalled = [push_env.create_task(tenant="globex", callback_url=black_hole.url()) for _ in range(6)]
    prompt = [push_env.create_task(tenant="acme", callback_url=receiver.url()) for _ in range(3)]
    push_env.consume()
    messages = take_messages(push_env, 9)

    invocation = threading.Thread(
        target=lambda: push_env.retry_queue.settle(
            messages, handle_deliveries(push_env.retry_queue.event(messages), Remaining(60), push_env.delivery.handler)
        )
    )
    invocation.start()
    try:
        # acme's three webhooks all arrive while globex's receiver still holds its connections open.
        receiver.wait_for_count(3, timeout=4.0)
        assert black_hole.in_flight == 2
    finally:
        invocation.join(timeout=20)
    assert not invocation.is_alive()

    assert {request.webhook_id for request in receiver.requests_for("/hooks")} == {f"{task.id}.1" for task in prompt}
    # The tenant cap: two of globex's attempts at a time, the other four put back untried.
    assert black_hole.max_in_flight == 2
    attempted = [task for task in stalled if log_of(push_env, task.id)]
    assert len(attempted) == 2
    assert all(log_of(push_env, task.id)[0]["error"].startswith("timeout") for task in attempted)
    queued = jobs_on_queue(push_env)
    assert sorted((job.task_id, job.attempt) for job in queued) == sorted(
        [(task.id, 2) for task in attempted] + [(task.id, 1) for task in stalled if task not in attempted]
    )
    assert push_env.dead_lettered() == []


def test_a_tenants_cap_holds_across_concurrent_invocations(
    push_env: PushEnv, black_hole: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(push_env, monkeypatch, TASKCAST_WEBHOOK_TIMEOUT="2", TASKCAST_WEBHOOK_TENANT_CONCURRENCY="2")
    for _ in range(6):
        push_env.create_task(tenant="globex", callback_url=black_hole.url())
    push_env.consume()
    batches = [take_messages(push_env, 3), take_messages(push_env, 3)]

    def invoke(messages: list[dict[str, Any]]) -> None:
        event = push_env.retry_queue.event(messages)
        push_env.retry_queue.settle(messages, handle_deliveries(event, Remaining(60), push_env.delivery.handler))

    invocations = [threading.Thread(target=invoke, args=(batch,)) for batch in batches]
    for invocation in invocations:
        invocation.start()
    for invocation in invocations:
        invocation.join(timeout=20)

    assert black_hole.max_in_flight == 2
    assert len(black_hole.requests_for("/hooks")) == 2
    assert push_env.dead_lettered() == []


def test_a_job_of_a_busy_tenant_looks_again_within_one_attempts_lease(
    push_env: PushEnv, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(push_env, monkeypatch, TASKCAST_WEBHOOK_TIMEOUT="2", TASKCAST_WEBHOOK_TENANT_CONCURRENCY="1")
    monkeypatch.setattr("taskcast.webhooks.retry.SLOT_WAIT_S", 0.0)
    handler = push_env.delivery.handler
    assert handler.slots.take("acme", time.time(), 60.0) is not None  # another invocation's attempt holds it
    task = push_env.create_task(callback_url=receiver.url())
    push_env.consume()
    [message] = take_messages(push_env, 1)
    job = WebhookJob.from_json(message["Body"])
    for _ in range(8):  # put back busy eight times in a row already: its back-off is at its longest
        job = job.put_off(0.0, time.time(), busy=True)
    message["Body"] = job.to_json()

    before = time.time()
    response = handle_deliveries(push_env.retry_queue.event([message]), Remaining(60), push_env.delivery.handler)
    push_env.retry_queue.settle([message], response)

    [back] = jobs_on_queue(push_env)
    assert (back.task_id, back.attempt, back.deferrals) == (task.id, 1, 9)
    # One attempt's lease (2 s timeout + 3 s margin): every slot taken now is free or expired by then.
    assert handler.lease_s == 5.0
    assert before + 5.0 <= back.not_before <= time.time() + 5.0  # not the minute it used to be
    assert receiver.requests_for("/hooks") == []


class SlotCalls:
    """Counts what the delivery handler does with a tenant's slots (the ``DeliverySlots`` seam)."""

    def __init__(self, push_env: PushEnv, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = self.renewed = self.given_back = 0
        slots = push_env.delivery.handler.slots
        take, renew, give_back = slots.take, slots.renew, slots.give_back

        def counted_take(*args: Any) -> int | None:
            slot = take(*args)
            self.taken += slot is not None
            return slot

        def counted_renew(*args: Any) -> None:
            self.renewed += 1
            renew(*args)

        def counted_give_back(*args: Any) -> None:
            self.given_back += 1
            give_back(*args)

        monkeypatch.setattr(slots, "take", counted_take)
        monkeypatch.setattr(slots, "renew", counted_renew)
        monkeypatch.setattr(slots, "give_back", counted_give_back)


def test_an_ended_attempt_hands_its_slot_to_a_waiting_job_of_the_same_tenant(
    push_env: PushEnv, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(push_env, monkeypatch, TASKCAST_WEBHOOK_TENANT_CONCURRENCY="1")
    # Long enough a wait that no job gives up while the two before it are answered (0.4 s each).
    monkeypatch.setattr("taskcast.webhooks.retry.SLOT_WAIT_S", 10.0)
    receiver.script("/hooks", *[Answer(delay_s=0.4)] * 3)
    tasks = [push_env.create_task(callback_url=receiver.url()) for _ in range(3)]
    push_env.consume()
    messages = take_messages(push_env, 3)
    slots = SlotCalls(push_env, monkeypatch)

    response = handle_deliveries(push_env.retry_queue.event(messages), Remaining(60), push_env.delivery.handler)
    push_env.retry_queue.settle(messages, response)

    # One at a time (the cap), all three in this invocation, and the slot taken once: the first attempt
    # to end handed it to the next job waiting, that one to the last, which gave it back.
    assert response == {"batchItemFailures": []}
    assert receiver.max_in_flight == 1
    assert sorted(r.webhook_id for r in receiver.requests_for("/hooks")) == sorted(f"{t.id}.1" for t in tasks)
    assert (slots.taken, slots.renewed, slots.given_back) == (1, 2, 1)
    assert jobs_on_queue(push_env) == []


def test_jobs_an_invocation_has_no_time_for_go_back_untried_and_never_to_the_dlq(
    push_env: PushEnv, receiver: WebhookReceiver
) -> None:
    tasks = [push_env.create_task(callback_url=receiver.url()) for _ in range(3)]
    push_env.consume()
    messages = take_messages(push_env, 3)

    # Less left than one attempt's deadline (1 s) plus the margin: nothing may start.
    response = handle_deliveries(push_env.retry_queue.event(messages), Remaining(2.5), push_env.delivery.handler)
    push_env.retry_queue.settle(messages, response)

    assert response == {"batchItemFailures": []}  # handled: no receive is counted towards the redrive
    assert receiver.requests_for("/hooks") == []
    assert all(log_of(push_env, task.id) == [] for task in tasks)
    assert sorted((job.task_id, job.attempt) for job in jobs_on_queue(push_env)) == sorted(
        (task.id, 1) for task in tasks
    )
    assert push_env.dead_lettered() == []


def test_a_breaker_opens_after_consecutive_failures_and_the_receiver_rests_until_the_cool_down(
    push_env: PushEnv, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        push_env,
        monkeypatch,
        TASKCAST_WEBHOOK_BREAKER_THRESHOLD="3",
        TASKCAST_WEBHOOK_BREAKER_COOL_DOWN="3",
        TASKCAST_WEBHOOK_RETRY_SCHEDULE="0.2,0.2,0.2,0.2,0.2",
    )
    receiver.script("/hooks", Answer(500), Answer(500), Answer(500))  # then 200
    failing = push_env.create_task(callback_url=receiver.url())
    push_env.consume()
    push_env.deliver(until=lambda: len(log_of(push_env, failing.id)) >= 3)
    endpoint = WebhookJob.from_json(json.dumps({**job_fields(failing.id), "callback_url": receiver.url()})).endpoint

    state = Breakers(push_env.settings.tasks_table).get(endpoint)
    assert state.openings == 1 and state.open_until > time.time()
    # Another task's webhook to the same endpoint waits too.
    other = push_env.create_task(callback_url=receiver.url("/other"))
    push_env.consume()
    push_env.deliver(
        until=lambda: [entry["outcome"] for entry in log_of(push_env, other.id)] == ["delivered"]
        and log_of(push_env, failing.id)[-1]["outcome"] == "delivered",
        timeout_s=20,
    )

    later = receiver.requests_for(None)[3:]
    assert len(later) == 2 and all(request.at >= state.open_until for request in later)
    assert [entry["attempt"] for entry in log_of(push_env, failing.id)] == [1, 2, 3, 4]  # no attempt was counted
    assert Breakers(push_env.settings.tasks_table).get(endpoint).healthy  # the success closed it


def job_fields(task_id: str) -> dict[str, Any]:
    return {"task_id": task_id, "tenant": "acme", "version": 1, "payload": "{}"}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("answer", [Answer.trickle(0.3), HOLD], ids=["trickling", "never-answering"])
def test_an_attempt_ends_at_its_hard_deadline_whatever_the_receiver_does(
    receiver: WebhookReceiver, answer: Answer
) -> None:
    receiver.script("/hooks", answer)
    sender = WebhookSender(timeout_s=1.0, allow_loopback=True)
    headers = signed_headers([TENANTS["acme"]["webhook_secret"]], "t-1.1", "{}")

    started = time.monotonic()
    result = sender.send(receiver.url(), "{}", headers)
    elapsed = time.monotonic() - started

    assert result.error is not None and result.error.startswith("timeout") and result.unreachable
    assert result.status_code is None
    assert elapsed < 1.5
    receiver.wait_until(lambda _: receiver.in_flight == 0, timeout=5.0)  # the connection was torn down
