"""The webhook endpoint routes under attack, in one process (the REST handler on moto tables and queues, a
real receiver on 127.0.0.1 that verifies every request with ``standardwebhooks``): a hostile tenant's
probes and a careless user's mistakes are 4xx problems, never 5xx; the endpoint's own pace bounds what a
tenant can make the stack send (resends, replays, test events); the URL guard holds at send time."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from taskcast.api.deps import endpoint_admin
from taskcast.endpoint_store import EndpointDeliveryLog, EndpointStore
from taskcast.settings import Settings
from taskcast.webhooks.delivery import system_lookup
from taskcast.webhooks.endpoint_admin import EndpointAdmin
from taskcast.webhooks.endpoints import MAX_REPLAY_BACKLOG
from taskcast.webhooks.format import WebhookJob, webhook_id
from tests.functional.rest_harness import RestHarness
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.timeout(60)

REPLAY_RATE = 10.0
TEST_INTERVAL_S = 5.0
PUBLIC = "93.184.216.34"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


class Resolver:
    """DNS as the stack sees it: ``*.test`` names resolve to what the test says (a rebinding is a change
    of it), anything else (127.0.0.1) as the system resolves it."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def __call__(self, host: str, port: int) -> list[str]:
        if host.endswith(".test"):
            return [self.names[host]]
        return system_lookup(host, port)  # IP literals in any form, offline


@dataclasses.dataclass
class Stage:
    api: RestHarness
    admin: EndpointAdmin
    clock: Clock
    resolver: Resolver
    sqs: RecordingSqs

    def call(self, method: str, path: str = "", tenant: str = "acme", **kwargs: Any) -> Any:
        return self.api.request(method, f"/webhook-endpoints{path}", tenant=tenant, **kwargs)

    def make(self, url: str, tenant: str = "acme") -> dict[str, Any]:
        reply = self.call("POST", tenant=tenant, json_body={"url": url})
        assert reply.status == 201, reply.text
        return reply.json()

    def queued(self) -> list[WebhookJob]:
        """The jobs put on the retry queue since the last call (SQS holds delayed ones out of sight)."""
        jobs = [WebhookJob.from_json(body) for body in self.sqs.bodies]
        self.sqs.bodies.clear()
        return jobs


class RecordingSqs:
    """The moto SQS client, keeping what was sent to the retry queue."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.bodies: list[str] = []

    def send_message(self, **request: Any) -> Any:
        self.bodies.append(request["MessageBody"])
        return self.client.send_message(**request)

    def send_message_batch(self, **request: Any) -> Any:
        self.bodies += [entry["MessageBody"] for entry in request["Entries"]]
        return self.client.send_message_batch(**request)


@pytest.fixture
def stage(api: RestHarness, settings: Settings) -> Iterator[Stage]:
    sqs = RecordingSqs(boto3.client("sqs"))
    retry_url = sqs.client.create_queue(QueueName="taskcast-webhook-retry")["QueueUrl"]
    dlq_url = sqs.client.create_queue(QueueName="taskcast-webhook-dlq")["QueueUrl"]
    configured = dataclasses.replace(
        settings,
        allow_loopback_callbacks=True,
        webhook_retry_queue_url=retry_url,
        webhook_dlq_url=dlq_url,
        webhook_timeout_s=5.0,
        endpoint_replay_rate=REPLAY_RATE,
        endpoint_test_interval_s=TEST_INTERVAL_S,
    )
    resolver, clock = Resolver(), Clock()
    admin = endpoint_admin(configured, api.dynamodb, sqs, resolver)
    admin.clock = clock
    api.deps.endpoints = admin
    yield Stage(api, admin, clock, resolver, sqs)


def log_one(stage: Stage, endpoint_id: str, task_id: str = "t1", version: int = 1, outcome: str = "failed") -> str:
    job = WebhookJob(task_id=task_id, tenant="acme", version=version, callback_url="http://127.0.0.1:9/h",
                     payload='{"type":"task.status"}', expires_at=2_000_000_000, endpoint_id=endpoint_id)
    return EndpointDeliveryLog(stage.api.settings.endpoints_table, stage.api.dynamodb).record_attempt(
        job, outcome=outcome, status_code=500, now=stage.clock()
    )


def assert_problem(reply: Any, status: int, kind: str) -> dict[str, Any]:
    assert reply.status == status, reply.text
    assert reply.header("content-type") == "application/problem+json"
    problem = reply.json()
    assert problem["type"].endswith(kind) and problem["detail"], problem
    return problem


# --- amplification: resend, replay and test event are paced per endpoint ---------------------------------


def test_a_resend_storm_is_paced_with_the_replays(stage: Stage) -> None:
    endpoint = stage.make("http://127.0.0.1:9/h")
    delivery = log_one(stage, endpoint["id"])
    for _ in range(5):
        assert stage.call("POST", f"/{endpoint['id']}/deliveries/{delivery}/resend").status == 202
    jobs = stage.queued()
    # Not five at once: one every 1/REPLAY_RATE s, the same webhook-id each time, and no secret in the job.
    assert sorted(job.not_before for job in jobs) == pytest.approx(
        [stage.clock.now + n / REPLAY_RATE for n in range(5)]
    )
    assert {job.webhook_id for job in jobs} == {webhook_id("t1", 1, endpoint["id"])}
    assert all(job.endpoint_id == endpoint["id"] and "whsec_" not in job.to_json() for job in jobs)


def test_an_endpoints_replay_backlog_is_bounded(stage: Stage) -> None:
    endpoint = stage.make("http://127.0.0.1:9/h")
    delivery = log_one(stage, endpoint["id"])
    store = EndpointStore(stage.api.settings.endpoints_table, stage.api.dynamodb)
    # As many replayed deliveries already wait as one endpoint may have.
    full = store.get("acme", endpoint["id"])
    assert store.book_replay(full, stage.clock.now + MAX_REPLAY_BACKLOG / REPLAY_RATE)

    for path, body in [(f"/deliveries/{delivery}/resend", None), ("/replay", {"since": "2020-01-01T00:00:00Z"})]:
        refused = stage.call("POST", f"/{endpoint['id']}{path}", json_body=body)
        assert_problem(refused, 429, "too-soon")
        assert 1 <= int(refused.header("retry-after")) <= 1
    assert stage.queued() == []
    # Once enough of them are due, it is taken again.
    stage.clock.now += 1.0
    assert stage.call("POST", f"/{endpoint['id']}/deliveries/{delivery}/resend").status == 202


def test_test_events_are_paced_per_endpoint(stage: Stage) -> None:
    endpoint = stage.make("http://127.0.0.1:9/h")
    with WebhookReceiver([endpoint["secret"]]) as receiver:
        moved = stage.call("PATCH", f"/{endpoint['id']}", json_body={"url": receiver.url()})
        assert moved.status == 200, moved.text
        first = stage.call("POST", f"/{endpoint['id']}/test")
        assert first.status == 200 and first.json()["status_code"] == 200, first.text
        stage.clock.now += 1.0
        again = stage.call("POST", f"/{endpoint['id']}/test")
        assert_problem(again, 429, "too-soon")
        assert again.header("retry-after") == "4"
        [sent] = receiver.requests_for(None)  # the refused one sent nothing
        assert sent.verified and sent.payload["type"] == "webhook.test"
        # Another endpoint of the tenant has its own pace; this one may test again after the interval.
        other = stage.make(receiver.url("/other"))
        assert stage.call("POST", f"/{other['id']}/test").status == 200
        stage.clock.now += TEST_INTERVAL_S
        assert stage.call("POST", f"/{endpoint['id']}/test").status == 200
        assert len(receiver.requests_for(None)) == 3


# --- a careless user's PATCH ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{"url": None}, {"enabled": None}, {"filter": None}, {"enabled": "yes"}, {"enabled": "false"}, {"enabled": 0}],
)
def test_a_patch_with_null_or_a_non_boolean_enabled_is_refused(stage: Stage, body: dict[str, Any]) -> None:
    endpoint = stage.make("http://127.0.0.1:9/h")
    stage.call("PATCH", f"/{endpoint['id']}", json_body={"filter": {"statuses": ["FAILED"]}})
    problem = assert_problem(stage.call("PATCH", f"/{endpoint['id']}", json_body=body), 400, "invalid-request")
    assert next(iter(body)) in problem["detail"]
    shown = stage.call("GET", f"/{endpoint['id']}").json()
    assert shown["enabled"] is True and shown["filter"] == {"statuses": ["FAILED"]}


def test_a_replay_with_a_non_boolean_only_failed_is_refused(stage: Stage) -> None:
    endpoint = stage.make("http://127.0.0.1:9/h")
    body = {"since": "2020-01-01T00:00:00Z", "only_failed": "false"}
    assert_problem(stage.call("POST", f"/{endpoint['id']}/replay", json_body=body), 400, "invalid-request")
