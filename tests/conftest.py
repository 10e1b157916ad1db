"""Shared fixtures: moto-backed AWS with the template's own tables, and test tenants."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

# No test may reach real AWS: fake credentials and a fixed region before anything builds a client.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
)

from moto import mock_aws  # noqa: E402
from moto.dynamodb.models import DynamoDBBackend  # noqa: E402

from taskcast import aws  # noqa: E402
from taskcast.local.template import (  # noqa: E402
    dynamodb_create_table_args,
    load_template,
    resources_of_type,
)
from taskcast.settings import Settings  # noqa: E402

TENANTS = {
    "acme": {"api_key": "key-acme-0123456789", "webhook_secret": "whsec_" + "YWNtZS1zZWNyZXQtMDEyMzQ1Njc4OQ=="},
    "globex": {"api_key": "key-globex-9876543210", "webhook_secret": "whsec_" + "Z2xvYmV4LXNlY3JldC05ODc2NTQ="},
}
TABLE_NAMES = {
    "TasksTable": "taskcast-tasks",
    "SubscriptionsTable": "taskcast-subscriptions",
    "IdempotencyTable": "taskcast-idempotency",
    "EndpointsTable": "taskcast-endpoints",
    "EndpointSecretsTable": "taskcast-endpoint-secrets",
}


@pytest.fixture
def tenants() -> dict[str, dict[str, str]]:
    return TENANTS


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the handlers read them from the environment, pointing at the moto tables."""
    env = {
        "TASKS_TABLE": TABLE_NAMES["TasksTable"],
        "SUBSCRIPTIONS_TABLE": TABLE_NAMES["SubscriptionsTable"],
        "IDEMPOTENCY_TABLE": TABLE_NAMES["IdempotencyTable"],
        "ENDPOINTS_TABLE": TABLE_NAMES["EndpointsTable"],
        "ENDPOINT_SECRETS_TABLE": TABLE_NAMES["EndpointSecretsTable"],
        "WORKER_FUNCTION": "taskcast-worker",
        "TASKCAST_TENANTS": json.dumps(TENANTS),
        "TASKCAST_WEBSOCKET_URL": "ws://127.0.0.1:3001",
        "TASKCAST_LONG_POLL_INTERVAL": "0.05",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings.from_env()


_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


@pytest.fixture
def atomic_dynamodb_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's DynamoDB writes atomic, as DynamoDB's are: in-process moto checks a write's condition
    and then writes without a lock, so two threads can both pass the same condition."""
    lock = threading.RLock()
    for name in _DYNAMODB_WRITES:
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def aws_mock(atomic_dynamodb_writes: None) -> Iterator[None]:  # noqa: ARG001
    aws.reset_clients()
    with mock_aws():
        yield
    aws.reset_clients()


@pytest.fixture
def dynamodb(aws_mock: None, settings: Settings):  # noqa: ARG001
    """A moto DynamoDB client with every table of template.yaml created."""
    client = boto3.client("dynamodb")
    template = load_template()
    for logical_id, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        client.create_table(**dynamodb_create_table_args(TABLE_NAMES[logical_id], resource["Properties"]))
    return client
