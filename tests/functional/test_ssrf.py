"""SSRF: callback URLs to internal addresses are refused when the task is created and again at every
delivery — including a public-looking hostname that resolves to an internal address only at delivery
time (DNS rebinding). Every test runs under ``loopback_only``: any socket connect outside
127.0.0.0/8 and ::1 fails and is recorded, and the tests assert nothing was attempted.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskcast.store import DeliveryLog
from taskcast.webhooks.delivery import CallbackRefused, WebhookSender, check_callback_url
from taskcast.webhooks.format import signed_headers
from tests.conftest import TENANTS
from tests.support.push_env import PushEnv
from tests.support.webhook_receiver import WebhookReceiver

pytest_plugins = ["tests.support.push_fixtures"]
pytestmark = pytest.mark.timeout(30)

LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "127.1", "2130706433", "0x7f.1", "0177.0.0.1", "[::1]"]
INTERNAL_HOSTS = [
    "0.0.0.0",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "[::ffff:127.0.0.1]",
    "[64:ff9b::a00:1]",
    "[fe80::1]",
]
REFUSED_HOSTS = LOOPBACK_HOSTS + INTERNAL_HOSTS
# What a hostile DNS answer can point a public-looking name to at delivery time.
REBOUND_ADDRESSES = [
    "127.0.0.1",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "::1",
    "::ffff:127.0.0.1",
    "64:ff9b::a00:1",
    "fe80::1",
]
PUBLIC_ADDRESS = "93.184.216.34"
HOSTNAME = "hooks.example.test"


@pytest.fixture(autouse=True)
def no_connection_leaves_the_machine(loopback_only: list[Any]) -> Iterator[None]:
    yield
    assert loopback_only == [], f"a connection to a non-loopback address was attempted: {loopback_only}"


def resolving(monkeypatch: pytest.MonkeyPatch, answers: Callable[[], str]) -> list[str]:
    """Make ``HOSTNAME`` resolve to ``answers()`` (called on every lookup); other names resolve as usual."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != HOSTNAME:
            return real(host, port, *args, **kwargs)
        address = answers()
        lookups.append(address)
        number = int(port or 443)
        if ":" in address:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


# ---------------------------------------------------------------------------------------- at create


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_internal_callbacks_are_refused_at_create(host: str, scheme: str) -> None:
    with pytest.raises(CallbackRefused) as refusal:
        check_callback_url(f"{scheme}://{host}:8443/hooks")
    assert str(refusal.value)


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_with_loopback_allowed_loopback_callbacks_pass(host: str) -> None:
    url = f"http://{host}:8080/hooks"
    assert check_callback_url(url, allow_loopback=True) == url


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_with_loopback_allowed_everything_else_is_still_refused(host: str) -> None:
    with pytest.raises(CallbackRefused):
        check_callback_url(f"http://{host}:8080/hooks", allow_loopback=True)


@pytest.mark.parametrize("address", REBOUND_ADDRESSES)
def test_a_hostname_resolving_to_an_internal_address_is_refused_at_create(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    resolving(monkeypatch, lambda: address)
    with pytest.raises(CallbackRefused, match=HOSTNAME):
        check_callback_url(f"https://{HOSTNAME}/hooks")


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@example.com/hooks",
        "ftp://example.com/hooks",
        "file:///etc/passwd",
        "https:///hooks",
        "https://example.com:99999/",
        "https://example.com/#frag",
        "https://" + "a" * 3000 + ".com/",
        "not a url",
    ],
)
def test_malformed_callbacks_are_refused_at_create(url: str) -> None:
    with pytest.raises(CallbackRefused):
        check_callback_url(url, resolve=lambda host, port: [PUBLIC_ADDRESS])


# ---------------------------------------------------------------------------------------- at delivery


def delivery_log(push_env: PushEnv, task_id: str) -> list[dict[str, Any]]:
    return DeliveryLog(push_env.settings.tasks_table).list(task_id)


@pytest.mark.parametrize("address", REBOUND_ADDRESSES)
def test_the_url_is_checked_again_before_every_attempt(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    lookups = resolving(monkeypatch, lambda: address)
    sender = WebhookSender(timeout_s=1.0, allow_loopback=False)

    result = sender.send(f"https://{HOSTNAME}/hooks", "{}", {"content-type": "application/json"})

    assert result.status_code is None
    assert result.error is not None and result.error.startswith(f"refused: callback_url host {HOSTNAME!r}")
    assert lookups == [address]


# Through the whole path (stream consumer, delivery log), for a few representative addresses.
@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1"])
def test_a_hostname_rebound_to_an_internal_address_is_refused_at_delivery(
    push_env: PushEnv, monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    monkeypatch.setenv("TASKCAST_ALLOW_LOOPBACK_CALLBACKS", "0")
    push_env.rebuild()
    url = f"https://{HOSTNAME}/hooks"
    # Public when the task is created...
    answer = {"now": PUBLIC_ADDRESS}
    lookups = resolving(monkeypatch, lambda: answer["now"])
    assert check_callback_url(url) == url
    task = push_env.create_task(callback_url=url)
    # ...internal when the webhook goes out.
    answer["now"] = address

    assert push_env.consume().get("batchItemFailures", []) == []
    push_env.deliver(until=lambda: len(delivery_log(push_env, task.id)) >= 1)

    [attempt] = delivery_log(push_env, task.id)
    assert attempt["outcome"] == "retrying" and attempt["status_code"] is None
    assert attempt["error"].startswith("refused:")
    assert lookups[-1] == address


@pytest.mark.parametrize("address", REBOUND_ADDRESSES)
def test_the_address_actually_connected_to_is_checked(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """DNS answers public to the URL check, then internal to the connection: the session refuses it."""
    answers = iter([PUBLIC_ADDRESS])
    lookups = resolving(monkeypatch, lambda: next(answers, address))
    sender = WebhookSender(timeout_s=1.0, allow_loopback=False)

    result = sender.send(f"https://{HOSTNAME}/hooks", "{}", {"content-type": "application/json"})

    assert result.status_code is None
    assert result.error is not None and result.error.startswith("refused: the address connected to")
    assert lookups == [PUBLIC_ADDRESS, address]


def test_with_loopback_allowed_loopback_forms_are_delivered(receiver: WebhookReceiver) -> None:
    sender = WebhookSender(timeout_s=2.0, allow_loopback=True)
    port = receiver.base_url.rsplit(":", 1)[1]

    for number, host in enumerate(["127.0.0.1", "127.1", "2130706433", "0x7f.1", "0177.0.0.1"]):
        headers = signed_headers([TENANTS["acme"]["webhook_secret"]], f"t-1.{number + 1}", "{}")
        result = sender.send(f"http://{host}:{port}/hooks", "{}", headers)
        assert (result.status_code, result.error) == (200, None), host
    assert len(receiver.requests_for("/hooks")) == 5


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_with_loopback_allowed_internal_addresses_are_refused_at_delivery(host: str) -> None:
    sender = WebhookSender(timeout_s=1.0, allow_loopback=True)
    result = sender.send(f"http://{host}:8080/hooks", "{}", {})
    assert result.status_code is None
    assert result.error is not None and result.error.startswith("refused:")


def test_the_guard_itself_refuses_and_records_non_loopback_connects(loopback_only: list[Any]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(OSError, match="test guard"):
        sock.connect(("192.0.2.1", 443))
    assert loopback_only == [("192.0.2.1", 443)]
    loopback_only.clear()
