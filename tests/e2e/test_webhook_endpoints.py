"""On a real local stack: registered webhook endpoints. Each delivery reaches a real receiver on 127.0.0.1
and is verified there by ``standardwebhooks`` with the endpoint's own secret (every request, for every
secret the receiver holds), as a tenant's receiver would."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from standardwebhooks import Webhook

from taskcast.local.testing import RunningStack, running_stack
from tests.conftest import TENANTS
from tests.e2e.conftest import FAST_WEBHOOKS, Api
from tests.support.webhook_receiver import Answer, Received, WebhookReceiver

DISABLE_AFTER_S = 3.0  # an endpoint failing for this long is disabled (5 days by default)
ENDPOINTS_PER_TENANT = 5
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def endpoints_stack() -> Iterator[RunningStack]:
    environment = {
        **FAST_WEBHOOKS,
        "TASKCAST_ENDPOINT_DISABLE_AFTER": str(DISABLE_AFTER_S),
        "TASKCAST_ENDPOINTS_PER_TENANT": str(ENDPOINTS_PER_TENANT),
        # A test event, then another after moving the URL (the pace of test events has its own test).
        "TASKCAST_ENDPOINT_TEST_INTERVAL": "0",
        # Failing receivers keep being tried: the breaker would hold their attempts back for its cool-down.
        "TASKCAST_WEBHOOK_BREAKER_THRESHOLD": "1000",
    }
    with running_stack(tenants=TENANTS, environment=environment) as running:
        yield running


class Endpoints(Api):
    """The endpoint routes for one tenant; every endpoint it made is deleted when the test ends."""

    def __init__(self, stack: RunningStack, api_key: str) -> None:
        super().__init__(stack, api_key)
        self.made: list[str] = []

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.base}/webhook-endpoints{path}", timeout=30, **kwargs)

    def make(self, url: str, **fields: Any) -> dict[str, Any]:
        answer = self.call("POST", "", json={"url": url, **fields})
        assert answer.status_code == 201, answer.text
        endpoint = answer.json()
        self.made.append(endpoint["id"])
        return endpoint

    def deliveries(self, endpoint_id: str, **params: Any) -> dict[str, Any]:
        answer = self.call("GET", f"/{endpoint_id}/deliveries", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait_logged(self, endpoint_id: str, check: Any, within_s: float = 20.0) -> list[dict[str, Any]]:
        """The newest page of the log once ``check(items)`` holds (the log lives in the stack's tables)."""
        deadline = time.monotonic() + within_s
        while True:
            items = self.deliveries(endpoint_id, limit=100)["items"]
            if check(items):
                return items
            if time.monotonic() > deadline:
                raise AssertionError(f"the delivery log never matched: {items}")
            time.sleep(0.2)

    def clean_up(self) -> None:
        for endpoint_id in self.made:
            self.call("DELETE", f"/{endpoint_id}")


@pytest.fixture
def acme(endpoints_stack: RunningStack) -> Iterator[Endpoints]:
    client = Endpoints(endpoints_stack, TENANTS["acme"]["api_key"])
    yield client
    client.clean_up()


@pytest.fixture
def globex(endpoints_stack: RunningStack) -> Iterator[Endpoints]:
    client = Endpoints(endpoints_stack, TENANTS["globex"]["api_key"])
    yield client
    client.clean_up()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    # The secret is known once the endpoint exists: tests set ``receiver.secrets`` before anything is sent.
    with WebhookReceiver([]) as running:
        yield running


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


def run_task(client: Api, job_type: str = "sleep", job_input: Any = None) -> dict[str, Any]:
    """Create a task and wait until it is finished; its last history entry."""
    task = client.create(job_type, {"seconds": 0.2, "steps": 2} if job_input is None else job_input)
    final = client.wait_terminal(task["id"])
    return {**final, "id": task["id"]}


def of_task(task_id: str) -> Any:
    return lambda hooks: [hook for hook in hooks if hook.data.get("task_id") == task_id]


def final_of(task_id: str, hooks: list[Received]) -> bool:
    return any(h.data.get("task_id") == task_id and h.data.get("status") in TERMINAL for h in hooks)


@pytest.mark.timeout(90)
def test_every_change_reaches_the_endpoint_signed_with_its_own_secret(
    acme: Endpoints, receiver: WebhookReceiver
) -> None:
    endpoint = acme.make(receiver.url(), description="orders")
    receiver.secrets = [endpoint["secret"]]
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["enabled"] is True and endpoint["filter"] == {} and endpoint["description"] == "orders"
    assert endpoint["secret"] != TENANTS["acme"]["webhook_secret"]

    task = run_task(acme)
    every_version = set(range(1, task["version"] + 1))
    hooks = of_task(task["id"])(
        receiver.wait_for(lambda got: {h.version for h in of_task(task["id"])(got)} >= every_version, timeout=20)
    )

    versions = sorted({hook.version for hook in hooks})
    assert versions == sorted(every_version)  # deliveries run concurrently: in any order
    for hook in hooks:
        assert hook.webhook_id == f"{endpoint['id']}.{task['id']}.{hook.version}"
        assert hook.payload["type"] == "task.status"
    receiver.assert_all_verified()
    assert all(hook.verified for hook in hooks)

    # Secrets are shown once: never in the list or in GET.
    listed = acme.call("GET", "").json()
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0] and "secret" not in acme.call("GET", f"/{endpoint['id']}").json()
    logged = acme.wait_logged(endpoint["id"], lambda items: len(items) >= len(versions))
    assert {item["task_id"] for item in logged} == {task["id"]}
    assert all(item["outcome"] == "delivered" and item["status_code"] == 200 for item in logged)
    assert all(isinstance(item["duration_ms"], int) for item in logged)


@pytest.mark.timeout(90)
def test_filters_by_status_and_by_type(acme: Endpoints, receiver: WebhookReceiver) -> None:
    finals = acme.make(receiver.url("/finals"), filter={"statuses": ["SUCCEEDED", "FAILED"]})
    failures = acme.make(receiver.url("/failures"), filter={"types": ["fail"]})
    # One receiver, two secrets: each path's requests are checked against their own endpoint's secret below.

    slept = run_task(acme)
    failed = run_task(acme, "fail", {})
    got_finals = receiver.wait_for(lambda hooks: len(hooks) >= 2, path="/finals", timeout=20)
    got_failures = receiver.wait_for(lambda hooks: final_of(failed["id"], hooks), path="/failures", timeout=20)

    for hooks, secret in ((got_finals, finals["secret"]), (got_failures, failures["secret"])):
        for hook in hooks:
            Webhook(secret).verify(hook.body, hook.headers)
    assert sorted((h.data["task_id"], h.data["status"]) for h in got_finals) == sorted(
        [(slept["id"], "SUCCEEDED"), (failed["id"], "FAILED")]
    )
    assert {h.data["task_id"] for h in got_failures} == {failed["id"]}
    assert {h.version for h in got_failures} >= {failed["version"]}


@pytest.mark.timeout(90)
def test_a_rotated_secret_signs_beside_the_old_one(acme: Endpoints, receiver: WebhookReceiver) -> None:
    endpoint = acme.make(receiver.url(), filter={"statuses": ["SUCCEEDED"]})
    rotated = acme.call("POST", f"/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != endpoint["secret"]
    # Every request must verify with the new secret AND with the old one (the overlap).
    receiver.secrets = [new_secret, endpoint["secret"]]

    task = run_task(acme)
    receiver.wait_for(lambda hooks: final_of(task["id"], hooks), timeout=20)
    receiver.assert_all_verified()


@pytest.mark.timeout(120)
def test_a_failed_delivery_is_replayed_and_resent_with_the_same_webhook_id(
    acme: Endpoints, receiver: WebhookReceiver
) -> None:
    endpoint = acme.make(receiver.url(), filter={"statuses": ["SUCCEEDED"]})
    receiver.secrets = [endpoint["secret"]]
    attempts = 1 + len(FAST_WEBHOOKS["TASKCAST_WEBHOOK_RETRY_SCHEDULE"].split(","))
    receiver.script("/hooks", *[Answer(status=500, kind="http_500")] * attempts)
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()

    task = run_task(acme)
    expected_id = f"{endpoint['id']}.{task['id']}.{task['version']}"
    receiver.wait_for_count(attempts, timeout=20)
    logged = acme.wait_logged(endpoint["id"], lambda items: items and items[0]["outcome"] == "failed")
    assert [item["attempt"] for item in logged] == list(range(attempts, 0, -1))  # newest first
    assert {item["webhook_id"] for item in logged} == {expected_id}

    replay = acme.call("POST", f"/{endpoint['id']}/replay", json={"since": since, "only_failed": True})
    assert replay.status_code == 202, replay.text
    assert replay.json() == {"queued": 1}
    hooks = receiver.wait_for_count(attempts + 1, timeout=20)
    assert hooks[-1].webhook_id == expected_id and hooks[-1].answered == 200
    acme.wait_logged(endpoint["id"], lambda items: items[0]["outcome"] == "delivered")

    # Now nothing has failed: a replay of only failures queues nothing; one delivery can still be resent.
    again = acme.call("POST", f"/{endpoint['id']}/replay", json={"since": since, "only_failed": True})
    assert again.json() == {"queued": 0}
    failed_id = logged[0]["id"]
    resent = acme.call("POST", f"/{endpoint['id']}/deliveries/{failed_id}/resend")
    assert resent.status_code == 202, resent.text
    hooks = receiver.wait_for_count(attempts + 2, timeout=20)
    assert hooks[-1].webhook_id == expected_id
    receiver.assert_all_verified()

    missing = acme.call("POST", f"/{endpoint['id']}/deliveries/1700000000000abcdefgh/resend")
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/problem+json"


@pytest.mark.timeout(90)
def test_the_log_pages_newest_first(acme: Endpoints, receiver: WebhookReceiver) -> None:
    endpoint = acme.make(receiver.url())
    receiver.secrets = [endpoint["secret"]]
    task = run_task(acme)
    receiver.wait_for(lambda hooks: final_of(task["id"], hooks), timeout=20)
    everything = acme.wait_logged(endpoint["id"], lambda items: any(i["version"] == task["version"] for i in items))
    pages, cursor = [], None
    while True:
        page = acme.deliveries(endpoint["id"], limit=1, **({"cursor": cursor} if cursor else {}))
        pages += page["items"]
        cursor = page["next"]
        if not cursor:
            break
    assert [item["id"] for item in pages] == [item["id"] for item in everything]
    assert [item["id"] for item in pages] == sorted((item["id"] for item in pages), reverse=True)
    bad = acme.call("GET", f"/{endpoint['id']}/deliveries", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.headers["Content-Type"] == "application/problem+json"


@pytest.mark.timeout(60)
def test_the_test_event_is_signed_and_its_outcome_answered(acme: Endpoints, receiver: WebhookReceiver) -> None:
    endpoint = acme.make(receiver.url())
    receiver.secrets = [endpoint["secret"]]

    answer = acme.call("POST", f"/{endpoint['id']}/test")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status_code": 200, "outcome": "delivered"}
    [hook] = receiver.wait_for_count(1, timeout=5)
    assert hook.verified and hook.payload["type"] == "webhook.test"
    assert hook.payload["data"]["endpoint_id"] == endpoint["id"]
    assert hook.webhook_id.startswith(f"{endpoint['id']}.test.")

    receiver.script("/hooks", Answer(status=503, kind="http_503"))
    assert acme.call("POST", f"/{endpoint['id']}/test").json() == {"status_code": 503, "outcome": "failed"}

    moved = acme.call("PATCH", f"/{endpoint['id']}", json={"url": closed_port_url()})
    assert moved.status_code == 200, moved.text
    unreachable = acme.call("POST", f"/{endpoint['id']}/test")
    assert unreachable.status_code == 200
    assert unreachable.json()["status_code"] is None and unreachable.json()["outcome"] == "failed"
    receiver.assert_all_verified()


@pytest.mark.timeout(90)
def test_another_tenant_sees_404_everywhere_and_receives_nothing(
    acme: Endpoints, globex: Endpoints, receiver: WebhookReceiver
) -> None:
    endpoint = acme.make(receiver.url())
    receiver.secrets = [endpoint["secret"]]
    unknown = "ep_" + "0" * 20
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"enabled": False}),
        ("DELETE", "", None),
        ("POST", "/rotate-secret", None),
        ("GET", "/deliveries", None),
        ("POST", "/replay", {"since": "2020-01-01T00:00:00Z"}),
        ("POST", "/test", None),
        ("POST", "/deliveries/1700000000000abcdefgh/resend", None),
    ]:
        foreign = globex.call(method, f"/{endpoint['id']}{suffix}", json=body)
        missing = globex.call(method, f"/{unknown}{suffix}", json=body)
        assert foreign.status_code == missing.status_code == 404, (method, suffix, foreign.text)
        assert foreign.json() == {**missing.json(), "detail": missing.json()["detail"].replace(unknown, endpoint["id"])}
    assert globex.call("GET", "").json() == []

    globex_task = run_task(globex)
    acme_task = run_task(acme)
    hooks = receiver.wait_for(lambda got: final_of(acme_task["id"], got), timeout=20)
    assert globex_task["id"] not in {hook.data["task_id"] for hook in hooks}
    assert acme.call("GET", f"/{endpoint['id']}").json()["enabled"] is True  # globex's PATCH did nothing
    receiver.assert_all_verified()


@pytest.mark.timeout(90)
def test_a_disabled_endpoint_gets_nothing_and_logs_its_changes_as_disabled(
    acme: Endpoints, receiver: WebhookReceiver
) -> None:
    endpoint = acme.make(receiver.url(), filter={"statuses": ["SUCCEEDED"]})
    receiver.secrets = [endpoint["secret"]]
    off = acme.call("PATCH", f"/{endpoint['id']}", json={"enabled": False})
    assert off.status_code == 200
    assert off.json()["enabled"] is False and off.json()["disabled_reason"] == "disabled by the tenant"

    task = run_task(acme)
    logged = acme.wait_logged(endpoint["id"], lambda items: any(i["task_id"] == task["id"] for i in items))
    assert [item["outcome"] for item in logged] == ["disabled"]
    assert receiver.requests_for(None) == []
    refused = acme.call("POST", f"/{endpoint['id']}/replay", json={"since": "2020-01-01T00:00:00Z"})
    assert refused.status_code == 409

    # Enabled again: nothing floods in by itself; a replay of what failed sends the missed change, once.
    on = acme.call("PATCH", f"/{endpoint['id']}", json={"enabled": True})
    assert on.json()["enabled"] is True and "disabled_reason" not in on.json()
    replay = acme.call("POST", f"/{endpoint['id']}/replay", json={"since": "2020-01-01T00:00:00Z", "only_failed": True})
    assert replay.json() == {"queued": 1}
    [hook] = receiver.wait_for_count(1, timeout=20)
    assert hook.webhook_id == f"{endpoint['id']}.{task['id']}.{task['version']}" and hook.verified


@pytest.mark.timeout(120)
def test_an_endpoint_failing_for_the_disable_time_is_disabled(acme: Endpoints, receiver: WebhookReceiver) -> None:
    endpoint = acme.make(receiver.url())
    receiver.secrets = [endpoint["secret"]]
    receiver.script("/hooks", *[Answer(status=500, kind="http_500")] * 1000)

    # Changes over longer than the disable time, every delivery failing.
    task = acme.create("sleep", {"seconds": DISABLE_AFTER_S * 2, "steps": 8})
    deadline = time.monotonic() + 30
    while (shown := acme.call("GET", f"/{endpoint['id']}").json())["enabled"]:
        assert time.monotonic() < deadline, "the failing endpoint was never disabled"
        time.sleep(0.2)
    assert "failed" in shown["disabled_reason"] and shown["disabled_at"]
    acme.wait_terminal(task["id"])
    logged = acme.wait_logged(endpoint["id"], lambda items: any(i["outcome"] == "disabled" for i in items))
    assert {item["outcome"] for item in logged} <= {"retrying", "failed", "disabled"}


@pytest.mark.timeout(60)
def test_a_410_disables_the_endpoint(acme: Endpoints, receiver: WebhookReceiver) -> None:
    endpoint = acme.make(receiver.url(), filter={"statuses": ["SUCCEEDED"]})
    receiver.secrets = [endpoint["secret"]]
    receiver.script("/hooks", Answer(status=410, kind="gone"))
    run_task(acme)
    receiver.wait_for_count(1, timeout=20)
    deadline = time.monotonic() + 20
    while (shown := acme.call("GET", f"/{endpoint['id']}").json())["enabled"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert shown["disabled_reason"] == "the receiver answered 410 Gone"


def test_refusals_are_problems(globex: Endpoints) -> None:
    cases = [
        ({"url": "https://10.0.0.1/hooks"}, 400, "callback-refused"),
        ({"url": "http://169.254.169.254/latest"}, 400, "callback-refused"),
        ({"url": "https://example.com/" + "a" * 3000}, 400, "invalid-request"),
        ({"url": "http://127.0.0.1:9/h", "filter": {"statuses": ["DONE"]}}, 400, "invalid-request"),
        ({"url": "http://127.0.0.1:9/h", "filter": {"statuses": []}}, 400, "invalid-request"),
        ({"url": "http://127.0.0.1:9/h", "filter": {"types": ["x" * 65]}}, 400, "invalid-request"),
        ({"url": "http://127.0.0.1:9/h", "description": "d" * 501}, 400, "invalid-request"),
        ({"url": "http://127.0.0.1:9/h", "secret": "whsec_mine"}, 400, "invalid-request"),
    ]
    for body, status, kind in cases:
        answer = globex.call("POST", "", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["type"].endswith(kind), answer.json()
    for _ in range(ENDPOINTS_PER_TENANT):
        globex.make("http://127.0.0.1:9/h")
    over = globex.call("POST", "", json={"url": "http://127.0.0.1:9/h"})
    assert over.status_code == 409 and over.json()["type"].endswith("endpoint-limit-reached")
    bad_since = globex.call("POST", f"/{globex.made[0]}/replay", json={"since": "yesterday"})
    assert bad_since.status_code == 400
