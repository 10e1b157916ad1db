"""Fixtures for the push path's functional tests (a plugin: ``pytest_plugins = ["tests.support.push_fixtures"]``).

- ``push_env``: moto tables and queues, the handlers' environment, a real ``@connections`` server;
- ``receiver``: a real webhook receiver that fails the test if any request does not verify;
- ``loopback_only``: fails any socket connect outside loopback and records the attempt.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from taskcast.push.deps import DeliveryDeps, PushDeps
from taskcast.settings import Settings
from tests.conftest import TENANTS
from tests.support.aws_events import SqsPump, StreamReader
from tests.support.connections_server import ConnectionsServer
from tests.support.push_env import RETRY_SCHEDULE, WEBHOOK_TIMEOUT_S, PushEnv
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def connections_server() -> Iterator[ConnectionsServer]:
    with ConnectionsServer() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(TENANTS["acme"]["webhook_secret"]) as server:
        yield server
        server.assert_all_verified()


@pytest.fixture
def push_env(
    dynamodb: Any, connections_server: ConnectionsServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PushEnv]:
    sqs = boto3.client("sqs")
    dead_letter_url = sqs.create_queue(QueueName="taskcast-webhook-dlq")["QueueUrl"]
    retry_url = sqs.create_queue(QueueName="taskcast-webhook-retry")["QueueUrl"]
    for key, value in {
        "TASKCAST_MANAGEMENT_URL": connections_server.url,
        "WEBHOOK_RETRY_QUEUE_URL": retry_url,
        "WEBHOOK_DLQ_URL": dead_letter_url,
        "TASKCAST_ALLOW_LOOPBACK_CALLBACKS": "1",
        "TASKCAST_WEBHOOK_RETRY_SCHEDULE": RETRY_SCHEDULE,
        "TASKCAST_WEBHOOK_TIMEOUT": WEBHOOK_TIMEOUT_S,
        "TASKCAST_FANOUT_WORKERS": "8",
    }.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    push = PushDeps.from_settings(settings)
    env = PushEnv(
        settings=settings,
        push=push,
        delivery=DeliveryDeps.from_settings(settings),
        dynamodb=dynamodb,
        tasks=push.tasks,
        stream=StreamReader(dynamodb, settings.tasks_table),
        connections=connections_server,
        retry_queue=SqsPump(retry_url, sqs),
        dead_letters=SqsPump(dead_letter_url, sqs),
    )
    yield env
    env.push.close()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail any socket connect outside 127.0.0.0/8 and ::1, and record the attempt: proof that no
    connection left the machine (the list must stay empty)."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(address, tuple) and not _loopback(str(host)):
            attempts.append(address)
            raise OSError(f"test guard: connection to {host} refused (only loopback allowed)")

    def connect(self: socket.socket, address: Any) -> None:
        guard(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts
