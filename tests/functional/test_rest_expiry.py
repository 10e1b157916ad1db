"""A task past its TTL (``expires_at``) is absent everywhere, even while DynamoDB has not deleted it yet."""

from __future__ import annotations

import time

import boto3
import pytest

from tests.functional.rest_harness import RestHarness


@pytest.fixture
def api(dynamodb, settings):
    with RestHarness(settings, start_workers=False) as harness:
        yield harness


def expire_now(table: str, task_id: str) -> None:
    """What DynamoDB's TTL leaves behind until its sweeper runs: the item, with ``expires_at`` in the past."""
    boto3.client("dynamodb").update_item(
        TableName=table,
        Key={"pk": {"S": task_id}, "sk": {"S": "STATE"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}},
    )


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/tasks/{id}", None),
        ("GET", "/tasks/{id}", {"wait": "1"}),
        ("GET", "/tasks/{id}/result", None),
        ("GET", "/tasks/{id}/events", None),
        ("GET", "/tasks/{id}/deliveries", None),
        ("DELETE", "/tasks/{id}", None),
    ],
)
def test_an_expired_task_answers_404(api: RestHarness, settings, method: str, path: str, query) -> None:
    created = api.create("sleep", {"seconds": 1})
    task_id = created.json()["id"]
    assert api.request("GET", f"/tasks/{task_id}").status == 200

    expire_now(settings.tasks_table, task_id)

    reply = api.request(method, path.format(id=task_id), query=query)
    assert reply.status == 404, reply.text
    assert reply.json()["type"] == "https://taskcast.dev/problems/task-not-found"
    assert boto3.client("dynamodb").get_item(
        TableName=settings.tasks_table, Key={"pk": {"S": task_id}, "sk": {"S": "STATE"}}
    ).get("Item"), "the item itself is still there: only the read treats it as gone"


def test_an_idempotent_replay_of_an_expired_task_answers_404(api: RestHarness, settings) -> None:
    headers = {"Idempotency-Key": "expiring-key-1"}
    created = api.create("sleep", {"seconds": 1}, headers=headers)
    assert created.status == 202
    expire_now(settings.tasks_table, created.json()["id"])

    replay = api.create("sleep", {"seconds": 1}, headers=headers)
    assert replay.status == 404, replay.text


def test_a_long_poll_ends_with_404_when_the_task_expires_during_the_hold(api: RestHarness, settings) -> None:
    task_id = api.create("sleep", {"seconds": 1}).json()["id"]
    api.deps.sleep = lambda seconds: expire_now(settings.tasks_table, task_id)

    reply = api.request("GET", f"/tasks/{task_id}", query={"wait": "2"})
    assert reply.status == 404, reply.text
