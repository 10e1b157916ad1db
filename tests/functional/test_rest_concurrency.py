"""The REST function serves requests concurrently in one process (as the local stack runs it), and a
request never sees another request's event, Lambda context or routing context while both are in flight."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from handlers import rest
from taskcast.api.app import shared_app
from taskcast.store import TaskStore
from tests.functional.rest_harness import WAIT_S, FakeLambdaContext, Reply, RestHarness, proxy_event


class MeetingStore:
    """A task store whose reads wait until ``parties`` requests are reading at the same time, then note
    what the resolver shows each of them."""

    def __init__(self, store: TaskStore, parties: int) -> None:
        self._store = store
        self._barrier = threading.Barrier(parties, timeout=WAIT_S)
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def get_for_tenant(self, task_id: str, tenant: str) -> Any:
        self._barrier.wait()  # every request is now inside the resolver at once
        app = shared_app()
        with self._lock:
            self.seen.append({
                "task_id": task_id,
                "tenant": tenant,
                "event_path": app.current_event.path,
                "request_id": app.lambda_context.aws_request_id,
                "context_tenant": app.context.get("expected_tenant"),
            })
        return self._store.get_for_tenant(task_id, tenant)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture
def api(dynamodb, settings):
    with RestHarness(settings, start_workers=False) as harness:
        yield harness


def test_requests_in_flight_together_each_see_only_their_own_request(api: RestHarness, monkeypatch) -> None:
    owners = ["acme", "globex", "acme", "globex"]
    task_ids = [api.create("sleep", {"seconds": 1}, tenant=owner).json()["id"] for owner in owners]
    meeting = MeetingStore(api.deps.store, parties=len(owners))
    api.deps.store = meeting  # type: ignore[assignment]
    # Each request carries its tenant in the routing context too, to check that context is per request.
    original = type(shared_app()).resolve_request

    def resolve_with_marker(self, event, lambda_context, **route_context):
        tenant = event["requestContext"]["authorizer"]["tenant"]
        return original(self, event, lambda_context, expected_tenant=tenant, **route_context)

    monkeypatch.setattr(type(shared_app()), "resolve_request", resolve_with_marker)

    def get(index: int) -> tuple[Reply, str]:
        context = FakeLambdaContext("taskcast-rest")
        event = proxy_event("GET", f"/tasks/{task_ids[index]}", tenant=owners[index])
        return Reply.from_proxy(rest.lambda_handler(event, context, deps=api.deps)), context.aws_request_id

    with ThreadPoolExecutor(max_workers=len(owners)) as pool:
        answers = list(pool.map(get, range(len(owners))))

    for index, (reply, _) in enumerate(answers):
        assert reply.status == 200, reply.text
        assert reply.json()["id"] == task_ids[index]
    request_ids = {request_id: index for index, (_, request_id) in enumerate(answers)}
    assert len(meeting.seen) == len(owners)
    for seen in meeting.seen:
        index = task_ids.index(seen["task_id"])
        assert seen["tenant"] == owners[index]
        assert seen["event_path"] == f"/tasks/{task_ids[index]}"
        assert request_ids[seen["request_id"]] == index
        assert seen["context_tenant"] == owners[index]


def test_a_cross_tenant_read_in_flight_with_the_owners_read_still_answers_404(api: RestHarness) -> None:
    task_id = api.create("sleep", {"seconds": 1}, tenant="acme").json()["id"]
    api.deps.store = MeetingStore(api.deps.store, parties=2)  # type: ignore[assignment]

    def get(tenant: str) -> Reply:
        event = proxy_event("GET", f"/tasks/{task_id}", tenant=tenant)
        return Reply.from_proxy(rest.lambda_handler(event, FakeLambdaContext("taskcast-rest"), deps=api.deps))

    with ThreadPoolExecutor(max_workers=2) as pool:
        owner, stranger = pool.map(get, ["acme", "globex"])

    assert owner.status == 200 and owner.json()["id"] == task_id
    assert stranger.status == 404
    assert stranger.json()["type"].endswith("/task-not-found")
