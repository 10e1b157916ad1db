"""The webhook delivery log: one record per attempt, kept beside the task (``sk = D#version#attempt``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from taskcast import aws
from taskcast.store import from_attributes, to_attributes

Outcome = Literal["delivered", "retrying", "failed", "disabled"]
PREFIX = "D#"


@dataclass(frozen=True)
class DeliveryAttempt:
    webhook_id: str
    version: int
    attempt: int
    status_code: int | None
    at: str
    outcome: Outcome
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["error"] is None:
            del data["error"]
        return data


def delivery_key(version: int, attempt: int) -> str:
    return f"{PREFIX}{version:010d}#{attempt:03d}"


class DeliveryLog:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")

    def record(self, task_id: str, tenant: str, expires_at: int, attempt: DeliveryAttempt) -> None:
        item = {
            "pk": task_id,
            "sk": delivery_key(attempt.version, attempt.attempt),
            "tenant": tenant,
            "expires_at": expires_at,
            "attempt_json": json.dumps(attempt.as_json()),
        }
        self.client.put_item(TableName=self.table_name, Item=to_attributes(item))

    def list(self, task_id: str) -> list[dict[str, Any]]:
        """Every attempt for the task, oldest first."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_attributes({":pk": task_id, ":prefix": PREFIX}),
            "ConsistentRead": True,
        }
        entries = [json.loads(from_attributes(item)["attempt_json"]) for item in aws.query_items(self.client, kwargs)]
        return sorted(entries, key=lambda entry: (entry["at"], entry["version"], entry["attempt"]))
