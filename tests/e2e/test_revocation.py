"""Revocation on a running stack: a key removed from the tenants secret is refused by REST and by the
WebSocket handshake, and a dropped webhook secret stops signing, within the documented bound (the tenant
cache TTL plus the authorizer-result cache), here cut to 1 s + 2 s."""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from taskcast.local.testing import RunningStack, running_stack
from tests.conftest import TENANTS
from tests.e2e.conftest import FAST_WEBHOOKS, Api
from tests.e2e.support.templates import shorten_reauthorize, write_template
from tests.support.webhook_receiver import WebhookReceiver

CACHE_TTL_S, REAUTHORIZE_S = 1, 2
BOUND_S = CACHE_TTL_S + REAUTHORIZE_S + 10  # the documented bound, plus room for a busy machine
NEW_KEY = "key-acme-after-revocation-42"
NEW_SECRET = "whsec_" + base64.b64encode(b"acme-secret-after-rotation-0001").decode()


@pytest.fixture(scope="module")
def revocable_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    template = write_template(tmp_path_factory.mktemp("revocation") / "template.yaml", shorten_reauthorize)
    environment = {**FAST_WEBHOOKS, "TASKCAST_TENANT_CACHE_TTL": str(CACHE_TTL_S)}
    with running_stack(template=template, tenants=TENANTS, environment=environment) as running:
        yield running


def handshake_status(stack: RunningStack, api_key: str) -> int:
    try:
        with connect(stack.websocket_url(api_key), open_timeout=15):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def verifies(secret: str, hook) -> bool:  # noqa: ANN001 - a Received
    try:
        Webhook(secret).verify(hook.body, hook.headers)
    except WebhookVerificationError:
        return False
    return True


def until(predicate, within_s: float, what: str) -> float:  # noqa: ANN001
    """Polls ``predicate`` until it holds; answers how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {within_s} s")


def test_a_revoked_key_and_a_dropped_secret_stop_working_within_the_bound(revocable_stack: RunningStack) -> None:
    stack = revocable_stack
    old_key, old_secret = TENANTS["acme"]["api_key"], TENANTS["acme"]["webhook_secret"]
    old_api, globex = Api(stack, old_key), Api(stack, TENANTS["globex"]["api_key"])
    with WebhookReceiver([old_secret]) as receiver:
        # Warm every function's tenant cache with the old directory: REST, both authorizers, the push path.
        old_api.create("sleep", {"seconds": 0, "steps": 1}, callback_url=receiver.url("/before"))
        assert handshake_status(stack, old_key) == 101
        before = receiver.wait_for_count(1, path="/before", timeout=20)
        assert verifies(old_secret, before[0])

        tenants = copy.deepcopy(TENANTS)
        tenants["acme"] = {"api_key": NEW_KEY, "webhook_secret": NEW_SECRET}
        stack.put_tenants(tenants)

        until(lambda: old_api.get("/tasks/none").status_code == 403, BOUND_S, "REST refusing the old key")
        until(lambda: handshake_status(stack, old_key) == 403, BOUND_S, "$connect refusing the old key")
        until(lambda: old_api.session.post(f"{old_api.base}/ws-tickets", timeout=30).status_code == 403, BOUND_S,
              "POST /ws-tickets refusing the old key")

        new_api = Api(stack, NEW_KEY)
        assert handshake_status(stack, NEW_KEY) == 101
        assert globex.get("/tasks/none").status_code == 404  # the other tenant was never affected

        # Webhooks: each new delivery is signed with the new secret only, once the push path reloaded.
        def signed_with_new_secret_only() -> bool:
            path = f"/after-{time.monotonic_ns()}"
            new_api.create("sleep", {"seconds": 0, "steps": 1}, callback_url=receiver.url(path))
            hook = receiver.wait_for_count(1, path=path, timeout=20)[0]
            return verifies(NEW_SECRET, hook) and not verifies(old_secret, hook)

        until(signed_with_new_secret_only, BOUND_S + 20, "webhooks signed without the dropped secret")
