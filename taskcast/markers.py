"""Small per-task items the push path keeps beside the task in the tasks table.

- ``sk = "FANOUT"``: the highest version already fanned out to WebSocket subscribers. Advanced
  (conditionally, never backwards) after a version went out, so a replayed stream batch does not send
  it again.
- ``sk = "WEBHOOK"``: present once a receiver answered ``410 Gone``: the task's callback is disabled.

The delivery log (``D#…``, ``taskcast.deliveries``) also serves as a marker: once the first attempt of
a version is logged, a replayed batch does not send that webhook again.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from taskcast import aws
from taskcast.deliveries import delivery_key
from taskcast.models import now_iso
from taskcast.store import to_attributes

FANOUT = "FANOUT"
WEBHOOK = "WEBHOOK"


def _conditional_failed(error: ClientError) -> bool:
    return aws.error_code(error) == "ConditionalCheckFailedException"


class Markers:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")

    def _key(self, task_id: str, sort_key: str) -> dict[str, Any]:
        return to_attributes({"pk": task_id, "sk": sort_key})

    def fanned_out_version(self, task_id: str) -> int:
        answer = self.client.get_item(
            TableName=self.table_name,
            Key=self._key(task_id, FANOUT),
            ConsistentRead=True,
            ProjectionExpression="#version",
            ExpressionAttributeNames={"#version": "version"},
        )
        item = answer.get("Item")
        return int(item["version"]["N"]) if item else 0

    def advance_fanout(self, task_id: str, version: int, expires_at: int) -> None:
        """Record that ``version`` went out; an older version never overwrites a newer one."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(task_id, FANOUT),
                UpdateExpression="SET #version = :version, expires_at = :expires",
                ConditionExpression="attribute_not_exists(#version) OR #version < :version",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":version": {"N": str(version)}, ":expires": {"N": str(expires_at)}},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise

    def webhook_state(self, task_id: str, version: int) -> tuple[bool, bool]:
        """(callback disabled, first attempt of ``version`` already logged) in one round trip."""
        keys = [self._key(task_id, WEBHOOK), self._key(task_id, delivery_key(version, 1))]
        request: dict[str, Any] = {
            self.table_name: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "sk"}
        }
        found: set[str] = set()
        for _ in range(5):
            answer = self.client.batch_get_item(RequestItems=request)
            found.update(item["sk"]["S"] for item in answer.get("Responses", {}).get(self.table_name, []))
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
        return WEBHOOK in found, delivery_key(version, 1) in found

    def callback_disabled(self, task_id: str) -> bool:
        answer = self.client.get_item(
            TableName=self.table_name, Key=self._key(task_id, WEBHOOK), ConsistentRead=True, ProjectionExpression="sk"
        )
        return "Item" in answer

    def disable_callback(self, task_id: str, reason: str, expires_at: int) -> None:
        item = to_attributes(
            {"pk": task_id, "sk": WEBHOOK, "reason": reason, "at": now_iso(), "expires_at": expires_at}
        )
        self.client.put_item(TableName=self.table_name, Item=item)
