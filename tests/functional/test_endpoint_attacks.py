"""The webhook endpoint routes under attack, in one process (the REST handler on moto tables and queues, a
real receiver on 127.0.0.1 that verifies every request with ``standardwebhooks``): a hostile tenant's
probes and a careless user's mistakes are 4xx problems, never 5xx; the endpoint's own pace bounds what a
tenant can make the stack send (resends, replays, test events); the URL guard holds at send time."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from taskcast.api.deps import endpoint_admin
from taskcast.endpoint_store import EndpointDeliveryLog, EndpointSecrets, EndpointStore
from taskcast.metrics import NullMetrics
from taskcast.settings import Settings
from taskcast.webhooks.delivery import WebhookSender, system_lookup
from taskcast.webhooks.endpoint_admin import EndpointAdmin
from taskcast.webhooks.endpoint_attempts import EndpointAttempts
from taskcast.webhooks.endpoints import MAX_REPLAY_BACKLOG, encode_cursor
from taskcast.webhooks.format import WebhookJob, webhook_id
from tests.functional.rest_harness import RestHarness
from tests.support.webhook_receiver import Answer, WebhookReceiver

pytestmark = pytest.mark.timeout(60)

REPLAY_RATE = 10.0
TEST_INTERVAL_S = 5.0
PUBLIC = "93.184.216.34"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.257  # not whole seconds, as times are

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


# --- SSRF at send time --------------------------------------------------------------------------------------


def test_the_test_event_checks_the_address_at_send_time(stage: Stage) -> None:
    stage.resolver.names["hooks.rebind.test"] = PUBLIC
    endpoint = stage.make("https://hooks.rebind.test/h")
    stage.resolver.names["hooks.rebind.test"] = "169.254.169.254"  # rebound after registration
    answer = stage.call("POST", f"/{endpoint['id']}/test")
    assert answer.status == 200, answer.text
    shown = answer.json()
    assert shown["outcome"] == "failed" and shown["status_code"] is None
    assert shown["error"].startswith("refused:") and "link-local" in shown["error"]


def test_each_attempt_uses_the_endpoint_as_it_is_now_through_the_guard(stage: Stage) -> None:
    settings = stage.api.settings
    attempts = EndpointAttempts(
        endpoints=EndpointStore(settings.endpoints_table, stage.api.dynamodb),
        secrets=EndpointSecrets(settings.endpoint_secrets_table, stage.api.dynamodb),
        log=EndpointDeliveryLog(settings.endpoints_table, stage.api.dynamodb),
        queue=stage.admin.queue,
        schedule=(1.0,) * 5,
        disable_after_s=3600.0,
        metrics=NullMetrics(),
    )
    sender = WebhookSender(timeout_s=5.0, allow_loopback=True, resolve=stage.resolver)
    stage.resolver.names["hooks.rebind.test"] = PUBLIC
    endpoint = stage.make("https://hooks.rebind.test/h")
    job = WebhookJob(task_id="t1", tenant="acme", version=3, callback_url=endpoint["url"],
                     payload='{"type":"task.status"}', expires_at=2_000_000_000, endpoint_id=endpoint["id"])

    # Rebound to the metadata address after registration: refused before any connection, and retried.
    stage.resolver.names["hooks.rebind.test"] = "169.254.169.254"
    refused = attempts.attempt(job, sender)
    assert refused.outcome == "retrying" and refused.result.error.startswith("refused:")
    [retry] = stage.queued()
    assert "whsec_" not in retry.to_json() and retry.webhook_id == f"{endpoint['id']}.t1.3"
    with WebhookReceiver([endpoint["secret"]]) as receiver:
        # The retry goes where the endpoint points now, with the same webhook-id.
        assert stage.call("PATCH", f"/{endpoint['id']}", json_body={"url": receiver.url()}).status == 200
        assert attempts.attempt(retry, sender).outcome == "delivered"
        [hook] = receiver.requests_for(None)
        assert hook.verified and hook.webhook_id == retry.webhook_id
        # Disabled, then deleted: what is still queued for it is not sent.
        stage.call("PATCH", f"/{endpoint['id']}", json_body={"enabled": False})
        assert attempts.settled(retry) == "disabled"
        assert stage.call("DELETE", f"/{endpoint['id']}").status == 204
        assert attempts.settled(retry) == "gone"
        assert len(receiver.requests_for(None)) == 1


def test_a_receivers_redirect_is_not_followed_and_only_a_short_prefix_is_kept(stage: Stage) -> None:
    with WebhookReceiver([]) as receiver:
        endpoint = stage.make(receiver.url())
        receiver.secrets = [endpoint["secret"]]
        long_location = receiver.url("/elsewhere?") + "\x1b[2J" + "x" * 20_000
        receiver.script("/hooks", Answer(302, {"Location": long_location}))
        answer = stage.call("POST", f"/{endpoint['id']}/test").json()
        assert answer["status_code"] == 302 and answer["outcome"] == "failed"
        assert receiver.requests_for("/elsewhere") == []
        assert len(answer["error"]) < 300 and "\x1b" not in answer["error"] and "20" in answer["error"]
        receiver.assert_all_verified()


@pytest.mark.parametrize(
    "url",
    [
        "https://good@169.254.169.254/",
        "https://[::ffff:169.254.169.254]/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://0xa9fea9fe/",
        "https://2852039166/",
        "https://[fe80::1]/",
        "https://10.0.0.1/",
        "https://hooks.private.test/",
        "ftp://hooks.public.test/",
        "http://hooks.public.test/",
    ],
)
def test_the_url_guard_holds_at_create_and_at_patch(stage: Stage, url: str) -> None:
    stage.resolver.names.update({"hooks.private.test": "10.1.2.3", "hooks.public.test": PUBLIC})
    assert_problem(stage.call("POST", json_body={"url": url}), 400, "callback-refused")
    endpoint = stage.make("https://hooks.public.test/h")
    assert_problem(stage.call("PATCH", f"/{endpoint['id']}", json_body={"url": url}), 400, "callback-refused")
    assert stage.call("GET", f"/{endpoint['id']}").json()["url"] == "https://hooks.public.test/h"


# --- isolation of the delivery log ------------------------------------------------------------------------


def test_cursors_and_delivery_ids_never_reach_another_endpoints_log(stage: Stage) -> None:
    mine = stage.make("http://127.0.0.1:9/a")
    sibling = stage.make("http://127.0.0.1:9/b")
    foreign = stage.make("http://127.0.0.1:9/c", tenant="globex")
    own = log_one(stage, mine["id"], task_id="mine")
    stage.clock.now += 1
    sibling_delivery = log_one(stage, sibling["id"], task_id="sibling")
    foreign_delivery = log_one(stage, foreign["id"], task_id="foreign")

    # A delivery of another endpoint, of the tenant or not, is unknown here.
    for delivery in (sibling_delivery, foreign_delivery):
        assert_problem(stage.call("POST", f"/{mine['id']}/deliveries/{delivery}/resend"), 404, "delivery-not-found")
    # A cursor made from another endpoint's delivery id only positions within this endpoint's own log.
    page = stage.call("GET", f"/{mine['id']}/deliveries", query={"cursor": encode_cursor(foreign_delivery)})
    assert page.status == 200 and [item["task_id"] for item in page.json()["items"]] == ["mine"]
    assert own in {item["id"] for item in page.json()["items"]}
    # Forged cursors (another tenant's key, garbage, huge) are 400 problems.
    forged = [
        base64.urlsafe_b64encode(f"LOG#{foreign['id']}".encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"pk": f"LOG#{foreign['id']}", "sk": foreign_delivery}).encode()).decode(),
        "d1:" + foreign_delivery,
        "%%%",
        "A" * 199,
        "A" * 5000,
    ]
    for cursor in forged:
        assert_problem(stage.call("GET", f"/{mine['id']}/deliveries", query={"cursor": cursor}), 400, "invalid-request")
    assert stage.queued() == []


def test_another_tenants_calls_answer_as_for_an_unknown_id_and_leave_no_trace(stage: Stage) -> None:
    with WebhookReceiver([]) as receiver:
        endpoint = stage.make(receiver.url())
        receiver.secrets = [endpoint["secret"]]
        delivery = log_one(stage, endpoint["id"])
        unknown = "ep_" + "0" * 20
        for method, suffix, body in [
            ("GET", "", None), ("PATCH", "", {"enabled": False}), ("DELETE", "", None),
            ("POST", "/rotate-secret", None), ("GET", "/deliveries", None),
            ("POST", "/replay", {"since": "2020-01-01T00:00:00Z"}), ("POST", "/test", None),
            ("POST", f"/deliveries/{delivery}/resend", None),
        ]:
            foreign = stage.call(method, f"/{endpoint['id']}{suffix}", tenant="globex", json_body=body)
            missing = stage.call(method, f"/{unknown}{suffix}", tenant="globex", json_body=body)
            assert foreign.status == missing.status == 404, (method, suffix, foreign.text)
            expected = {**missing.json(), "detail": missing.json()["detail"].replace(unknown, endpoint["id"])}
            assert foreign.json() == expected
        # Nothing was queued, sent, switched off or rotated, and the owner's test-event pace is untouched.
        assert stage.queued() == [] and receiver.requests_for(None) == []
        assert stage.call("GET", f"/{endpoint['id']}").json()["enabled"] is True
        assert stage.call("POST", f"/{endpoint['id']}/test").json()["outcome"] == "delivered"
        receiver.assert_all_verified()  # signed with the secret given at creation: not rotated


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
