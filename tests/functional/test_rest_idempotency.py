"""``Idempotency-Key`` on ``POST /tasks`` (Powertools idempotency over the template's DynamoDB table)."""

from __future__ import annotations

import pytest

from tests.functional.rest_harness import RestHarness


@pytest.fixture
def api(dynamodb, settings, monkeypatch):
    # The shared settings fixture sets this to "", which Powertools cannot parse as a boolean.
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    with RestHarness(settings) as harness:
        yield harness


BODY = {"type": "sleep", "input": {"seconds": 0}}


def test_same_key_and_body_returns_the_same_task_once(api: RestHarness) -> None:
    first = api.request("POST", "/tasks", json_body=BODY, headers={"Idempotency-Key": "order-42"})
    again = api.request("POST", "/tasks", json_body=BODY, headers={"idempotency-key": "order-42"})
    assert first.status == again.status == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.header("Location") == f"/tasks/{first.json()['id']}"
    assert api.invocations == [first.json()["id"]]  # one task, one worker


def test_same_key_with_another_body_is_422(api: RestHarness) -> None:
    api.request("POST", "/tasks", json_body=BODY, headers={"Idempotency-Key": "order-43"})
    other = {"type": "sleep", "input": {"seconds": 1}}
    reply = api.request("POST", "/tasks", json_body=other, headers={"Idempotency-Key": "order-43"})
    assert reply.status == 422
    assert reply.header("Content-Type") == "application/problem+json"
    assert reply.json()["type"].endswith("/idempotency-key-reused")
    assert len(api.invocations) == 1


def test_another_tenant_reusing_a_key_gets_its_own_task(api: RestHarness) -> None:
    mine = api.request("POST", "/tasks", json_body=BODY, headers={"Idempotency-Key": "shared"})
    theirs = api.request("POST", "/tasks", json_body=BODY, headers={"Idempotency-Key": "shared"}, tenant="globex")
    assert mine.status == theirs.status == 202
    assert mine.json()["id"] != theirs.json()["id"]
    assert api.request("GET", f"/tasks/{theirs.json()['id']}", tenant="globex").status in {200, 303}


def test_without_a_key_every_post_is_a_new_task(api: RestHarness) -> None:
    first = api.request("POST", "/tasks", json_body=BODY)
    second = api.request("POST", "/tasks", json_body=BODY)
    assert first.json()["id"] != second.json()["id"]


def test_failed_dispatch_does_not_pin_the_key(api: RestHarness) -> None:
    working = api.deps.invoke_worker

    def broken(task_id: str, worker_class: str) -> None:
        raise ConnectionError("down")

    api.deps.invoke_worker = broken
    assert api.request("POST", "/tasks", json_body=BODY, headers={"Idempotency-Key": "retry-me"}).status == 503
    api.deps.invoke_worker = working
    retried = api.request("POST", "/tasks", json_body=BODY, headers={"Idempotency-Key": "retry-me"})
    assert retried.status == 202


def test_overlong_key_is_400(api: RestHarness) -> None:
    reply = api.request("POST", "/tasks", json_body=BODY, headers={"Idempotency-Key": "k" * 300})
    assert reply.status == 400
    assert reply.json()["type"].endswith("/invalid-idempotency-key")
