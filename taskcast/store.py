"""The task store: one DynamoDB table holding, per task id (partition key ``pk``):

- ``sk = "STATE"``: the current task, replaced whole on every change under a condition on ``version``;
- ``sk = "V#0000000001"`` …: the append-only history, one record per version, written in the same
  transaction as the state it records;
- other sort keys (``D#…`` delivery log, ``FANOUT``) belong to the push path.

Every item carries the TTL attribute ``expires_at``. Values that are arbitrary JSON (input, result,
error) are stored as JSON strings so that numbers keep their type.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from taskcast import aws
from taskcast.models import Status, Task, history_entry, is_expired

STATE = "STATE"
HISTORY_PREFIX = "V#"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class VersionConflict(Exception):
    """Another writer changed the task first; read it again and decide again."""


class TaskExists(Exception):
    pass


# The largest version history_key's ten digits hold; a larger one would sort outside the history's range.
MAX_VERSION = 9_999_999_999


def history_key(version: int) -> str:
    return f"{HISTORY_PREFIX}{version:010d}"


def to_attributes(data: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in data.items() if value is not None}


def from_attributes(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; taskcast only stores integers."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value)
    return value


def task_to_item(task: Task) -> dict[str, Any]:
    data: dict[str, Any] = {
        "pk": task.id,
        "sk": STATE,
        "tenant": task.tenant,
        "type": task.type,
        "status": str(task.status),
        "version": task.version,
        "progress": task.progress,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "expires_at": task.expires_at,
        "input_json": json.dumps(task.input),
        "result_json": None if task.result is None else json.dumps(task.result),
        "error_json": None if task.error is None else json.dumps(task.error),
        "callback_url": task.callback_url,
        "message": task.message,
        "result_ref": task.result_ref,
    }
    return to_attributes(data)


def task_from_plain(data: dict[str, Any]) -> Task:
    """A task from a deserialized STATE item (also used on stream images)."""
    return Task(
        id=data["pk"],
        tenant=data["tenant"],
        type=data["type"],
        status=Status(data["status"]),
        version=int(data["version"]),
        progress=int(data.get("progress", 0)),
        input=json.loads(data["input_json"]) if "input_json" in data else None,
        result=json.loads(data["result_json"]) if "result_json" in data else None,
        error=json.loads(data["error_json"]) if "error_json" in data else None,
        callback_url=data.get("callback_url"),
        message=data.get("message"),
        result_ref=data.get("result_ref"),
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        expires_at=int(data.get("expires_at", 0)),
    )


def task_from_item(item: dict[str, Any]) -> Task:
    return task_from_plain(from_attributes(item))


def _history_item(task: Task) -> dict[str, Any]:
    entry = history_entry(task)
    data = {
        "pk": task.id,
        "sk": history_key(task.version),
        "tenant": task.tenant,
        "expires_at": task.expires_at,
        "entry_json": json.dumps(entry),
    }
    return to_attributes(data)


def _is_conflict(error: ClientError) -> bool:
    return aws.error_code(error) in {"ConditionalCheckFailedException", "TransactionCanceledException"}


class TaskStore:
    def __init__(
        self,
        table_name: str,
        client: Any = None,
        retention_s: int = 7 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.retention_s = retention_s
        self.clock = clock

    def new_expiry(self) -> int:
        return int(time.time()) + self.retention_s

    def create(self, task: Task) -> Task:
        """Write a new task (version 1) and its first history record, atomically."""
        if not task.expires_at:
            task = replace(task, expires_at=self.new_expiry())
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": task_to_item(task),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self.table_name, "Item": _history_item(task)}},
                ]
            )
        except ClientError as error:
            if _is_conflict(error):
                raise TaskExists(task.id) from error
            raise
        return task

    def get(self, task_id: str, *, consistent: bool = True) -> Task | None:
        answer = self.client.get_item(
            TableName=self.table_name,
            Key=to_attributes({"pk": task_id, "sk": STATE}),
            ConsistentRead=consistent,
        )
        item = answer.get("Item")
        if not item:
            return None
        task = task_from_item(item)
        # Every read of a task goes through here: an expired task is absent everywhere (404, not_found).
        return None if is_expired(task, self.clock()) else task

    def get_for_tenant(self, task_id: str, tenant: str) -> Task | None:
        """The task if it exists and belongs to ``tenant``; None either way otherwise (no existence leak)."""
        task = self.get(task_id)
        if task is None or task.tenant != tenant:
            return None
        return task

    def replace(self, current: Task, new: Task) -> Task:
        """Write ``new`` over ``current`` if nobody changed the task since ``current`` was read."""
        if new.version != current.version + 1:
            raise ValueError("a change must raise the version by exactly one")
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": task_to_item(new),
                            "ConditionExpression": "#version = :expected",
                            "ExpressionAttributeNames": {"#version": "version"},
                            "ExpressionAttributeValues": {":expected": {"N": str(current.version)}},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": _history_item(new),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as error:
            if _is_conflict(error):
                raise VersionConflict(current.id) from error
            raise
        return new

    def update(self, task_id: str, change: Callable[[Task], Task | None], attempts: int = 20) -> Task | None:
        """Read, decide with ``change`` (a pure function), write conditionally; retry on a lost race.

        ``change`` returns the next task, or None for "nothing to do"; it may raise
        ``InvalidTransition``, which propagates (the task is terminal, so there is one winner).
        Returns the written task, or None when the task is missing or ``change`` declined.
        """
        for _ in range(attempts):
            current = self.get(task_id)
            if current is None:
                return None
            new = change(current)
            if new is None:
                return None
            try:
                return self.replace(current, new)
            except VersionConflict:
                continue
        raise VersionConflict(task_id)

    def history(self, task_id: str, after_version: int = 0) -> list[dict[str, Any]]:
        """History entries with version > ``after_version``, oldest first."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": to_attributes(
                {
                    ":pk": task_id,
                    ":low": history_key(after_version + 1),
                    ":high": history_key(MAX_VERSION),
                }
            ),
            "ConsistentRead": True,
        }
        return [json.loads(from_attributes(item)["entry_json"]) for item in aws.query_items(self.client, kwargs)]
