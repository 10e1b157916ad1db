"""Webhook secret rotation: while a tenant has two secrets, every delivery carries two signatures, and
``standardwebhooks`` verifies it with either secret alone (receivers can switch at their own pace)."""

from __future__ import annotations

from standardwebhooks import Webhook

from taskcast.local.testing import RunningStack
from tests.e2e.conftest import Api
from tests.hardening.conftest import HARDENING_TENANTS, ROTATING_NEW, ROTATING_OLD
from tests.support.webhook_receiver import Answer, WebhookReceiver


def test_during_a_rotation_each_delivery_verifies_with_the_old_and_with_the_new_secret(stack: RunningStack) -> None:
    api = Api(stack, HARDENING_TENANTS["initech"]["api_key"])
    with WebhookReceiver([ROTATING_OLD, ROTATING_NEW]) as receiver:
        receiver.script("/hooks", Answer(500))  # the retry is signed again, with both secrets
        task = api.create("sleep", {"seconds": 0, "steps": 1}, callback_url=receiver.url())
        final = api.wait_terminal(task["id"])
        received = receiver.wait_for(
            lambda requests: {r.payload["data"]["version"] for r in requests if r.answered == 200}
            >= set(range(1, final["version"] + 1)),
            timeout=30,
        )

    receiver.assert_all_verified()  # every request verified with each secret on its own
    assert len(received) > final["version"]  # the first, refused delivery came again
    for request in received:
        signatures = request.headers["webhook-signature"].split(" ")
        assert len(signatures) == 2 and all(signature.startswith("v1,") for signature in signatures)
        for secret in (ROTATING_OLD, ROTATING_NEW):
            assert Webhook(secret).verify(request.body, request.headers)["data"]["task_id"] == task["id"]


def test_a_tenant_with_one_secret_signs_once_and_other_secrets_do_not_verify(stack: RunningStack) -> None:
    acme = HARDENING_TENANTS["acme"]
    api = Api(stack, acme["api_key"])
    with WebhookReceiver(acme["webhook_secret"]) as receiver:
        task = api.create("sleep", {"seconds": 0, "steps": 1}, callback_url=receiver.url())
        request = receiver.wait_for_count(1, timeout=30)[0]
    receiver.assert_all_verified()
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    assert request.payload["data"]["task_id"] == task["id"]
    for foreign in (ROTATING_OLD, HARDENING_TENANTS["globex"]["webhook_secret"]):
        try:
            Webhook(foreign).verify(request.body, request.headers)
        except Exception as error:  # noqa: BLE001 - the library's verification error
            assert "signature" in str(error).lower()
        else:
            raise AssertionError("a delivery verified with another tenant's secret")
