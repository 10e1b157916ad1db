"""Registered endpoints through the push path (moto): the stream consumer hands one job per matching
endpoint off, the delivery function signs it with the endpoint's secret and logs it; a replayed stream
batch sends nothing twice; the failing clock disables an endpoint (driven by an injected clock)."""

from __future__ import annotations

from typing import Any

import pytest

from taskcast.endpoint_store import EndpointDeliveryLog, EndpointSecrets, EndpointStore
from taskcast.metrics import NullMetrics
from taskcast.models import Status
from taskcast.webhooks.endpoint_attempts import EndpointAttempts
from taskcast.webhooks.endpoints import Endpoint, EndpointFilter, SigningSecret, new_endpoint_id, new_secret
from taskcast.webhooks.format import AttemptResult, WebhookJob
from tests.support.push_env import PushEnv
from tests.support.webhook_receiver import WebhookReceiver

pytest_plugins = ["tests.support.push_fixtures"]
pytestmark = pytest.mark.timeout(60)


def register(push_env: PushEnv, url: str, tenant: str = "acme", **fields: Any) -> tuple[Endpoint, str]:
    settings = push_env.settings
    endpoint = Endpoint(id=new_endpoint_id(), tenant=tenant, url=url, created_at="2026-01-01T00:00:00.000Z",
                        **fields)
    secret = new_secret()
    EndpointSecrets(settings.endpoint_secrets_table).put(endpoint.id, [SigningSecret(secret)])
    EndpointStore(settings.endpoints_table).create(endpoint)
    return endpoint, secret


def log_of(push_env: PushEnv, endpoint_id: str) -> list[dict[str, Any]]:
    return EndpointDeliveryLog(push_env.settings.endpoints_table).page(endpoint_id, 100).items


def test_matching_changes_are_delivered_once_even_when_the_stream_replays(
    push_env: PushEnv, receiver: WebhookReceiver
) -> None:
    endpoint, secret = register(push_env, receiver.url(), filter=EndpointFilter(statuses=("RUNNING",)))
    other, _ = register(push_env, receiver.url("/other"), tenant="globex")
    receiver.secrets = [secret]
    task = push_env.create_task()
    push_env.advance(task, Status.RUNNING, progress=10)
    event = push_env.stream_event()

    assert push_env.consume(event).get("batchItemFailures", []) == []
    push_env.deliver(until=lambda: bool(log_of(push_env, endpoint.id)))
    [hook] = receiver.wait_for_count(1)
    assert hook.webhook_id == f"{endpoint.id}.{task.id}.2" and hook.verified

    # The same records again (Lambda resumes a stream from an earlier checkpoint): dropped as repeats.
    assert push_env.consume(event).get("batchItemFailures", []) == []
    push_env.deliver(until=push_env.queue_drained)
    assert len(receiver.requests_for(None)) == 1
    assert [entry["outcome"] for entry in log_of(push_env, endpoint.id)] == ["delivered"]
    assert log_of(push_env, other.id) == []


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Answering:
    """A receiver that answers 200."""

    def send(self, url: str, payload: str, headers: dict[str, str]) -> AttemptResult:
        return AttemptResult(status_code=200)


class Failing:
    """A receiver that never answers well."""

    def send(self, url: str, payload: str, headers: dict[str, str]) -> AttemptResult:
        return AttemptResult(status_code=500)


def test_an_endpoint_is_disabled_once_every_delivery_failed_for_the_disable_time(push_env: PushEnv) -> None:
    settings = push_env.settings
    endpoint, _ = register(push_env, "http://127.0.0.1:9/hooks")
    clock = Clock()
    attempts = EndpointAttempts(
        endpoints=EndpointStore(settings.endpoints_table, clock=clock),
        secrets=EndpointSecrets(settings.endpoint_secrets_table),
        log=EndpointDeliveryLog(settings.endpoints_table),
        queue=push_env.delivery.webhooks.queue,
        schedule=(1.0,) * 10,
        disable_after_s=3600.0,
        metrics=NullMetrics(),
        clock=clock,
    )
    job = WebhookJob(task_id="t1", tenant="acme", version=1, callback_url=endpoint.url, payload="{}",
                     expires_at=2_000_000_000, endpoint_id=endpoint.id)
    store = EndpointStore(settings.endpoints_table)

    assert attempts.attempt(job, Failing()).outcome == "retrying"
    assert store.get("acme", endpoint.id).failing_since == clock.now  # the clock started
    clock.now += 3000
    assert attempts.attempt(job, Answering()).outcome == "delivered"
    assert store.get("acme", endpoint.id).failing_since is None  # a success stops it
    attempts.attempt(job, Failing())
    assert store.get("acme", endpoint.id).failing_since == clock.now  # and the next failure starts it again
    clock.now += 3599
    attempts.attempt(job, Failing())
    assert store.get("acme", endpoint.id).enabled
    clock.now += 1
    attempts.attempt(job, Failing())
    disabled = store.get("acme", endpoint.id)
    assert not disabled.enabled and disabled.disabled_reason == "every delivery failed for 1 hour"
    # Jobs still queued for it end as `disabled`, unsent.
    clock.now += 1
    assert attempts.settled(job) == "disabled"
    assert log_of(push_env, endpoint.id)[0]["outcome"] == "disabled"
