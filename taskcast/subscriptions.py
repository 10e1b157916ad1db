"""The subscriptions store: which WebSocket connection listens to which task.

One item per (``task_id``, ``connection_id``) in the subscriptions table, so that fan-out is a Query by
task id (never a Scan) and ``$disconnect`` finds a connection's items through the ``by-connection`` GSI.

Each item carries:

- ``tenant``: the connection's tenant (checked when the subscription was made);
- ``after_version``: the last version this connection was sent by the subscribe handshake; the stream
  consumer sends it only versions greater than this, so the snapshot never makes a version go backwards;
- ``pending_until``: present while the subscribe handshake is still sending the snapshot or replay. The
  consumer waits for it to go away (or expire) before sending live changes, so that live changes always
  arrive after the handshake's messages (see ``taskcast.push.subscribe``);
- ``expires_at``: the TTL, past API Gateway's 2-hour connection limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from taskcast import aws
from taskcast.store import from_attributes, to_attributes

BY_CONNECTION_INDEX = "by-connection"
# How long a subscribe handshake may hold back live changes before the consumer stops waiting for it.
HANDSHAKE_HOLD_S = 5.0
_BATCH_WRITE_LIMIT = 25


@dataclass(frozen=True)
class Subscription:
    task_id: str
    connection_id: str
    tenant: str
    after_version: int = 0
    pending_until: float | None = None
    expires_at: int = 0

    def pending(self, now: float) -> bool:
        """True while the subscribe handshake may still be sending this connection its first messages."""
        return self.pending_until is not None and now < self.pending_until


def _to_item(subscription: Subscription) -> dict[str, Any]:
    data: dict[str, Any] = {
        "task_id": subscription.task_id,
        "connection_id": subscription.connection_id,
        "tenant": subscription.tenant,
        "after_version": subscription.after_version,
        "expires_at": subscription.expires_at,
    }
    item = to_attributes(data)
    if subscription.pending_until is not None:
        # Fractional epoch seconds: stored as a number string so no precision is lost to int().
        item["pending_until"] = {"N": repr(round(subscription.pending_until, 3))}
    return item


def _from_item(item: dict[str, Any]) -> Subscription:
    pending = item.get("pending_until")
    plain = from_attributes({key: value for key, value in item.items() if key != "pending_until"})
    return Subscription(
        task_id=plain["task_id"],
        connection_id=plain["connection_id"],
        tenant=plain.get("tenant", ""),
        after_version=int(plain.get("after_version", 0)),
        pending_until=float(pending["N"]) if pending else None,
        expires_at=int(plain.get("expires_at", 0)),
    )


class SubscriptionStore:
    def __init__(self, table_name: str, client: Any = None, ttl_s: int = 3 * 3600) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.ttl_s = ttl_s

    def _key(self, task_id: str, connection_id: str) -> dict[str, Any]:
        return to_attributes({"task_id": task_id, "connection_id": connection_id})

    def begin(self, task_id: str, connection_id: str, tenant: str, now: float | None = None) -> Subscription:
        """Write the subscription as pending: live changes wait until ``confirm`` (or the hold expires)."""
        now = time.time() if now is None else now
        subscription = Subscription(
            task_id=task_id,
            connection_id=connection_id,
            tenant=tenant,
            after_version=0,
            pending_until=now + HANDSHAKE_HOLD_S,
            expires_at=int(now) + self.ttl_s,
        )
        self.client.put_item(TableName=self.table_name, Item=_to_item(subscription))
        return subscription

    def confirm(self, task_id: str, connection_id: str, after_version: int) -> bool:
        """End the handshake: from now on the consumer sends this connection versions > ``after_version``.

        False when the subscription is gone meanwhile (unsubscribed or disconnected).
        """
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(task_id, connection_id),
                UpdateExpression="SET after_version = :after REMOVE pending_until",
                ConditionExpression="attribute_exists(task_id)",
                ExpressionAttributeValues={":after": {"N": str(after_version)}},
            )
        except ClientError as error:
            if aws.error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, task_id: str, connection_id: str) -> Subscription | None:
        answer = self.client.get_item(
            TableName=self.table_name, Key=self._key(task_id, connection_id), ConsistentRead=True
        )
        item = answer.get("Item")
        return _from_item(item) if item else None

    def remove(self, task_id: str, connection_id: str) -> None:
        self.client.delete_item(TableName=self.table_name, Key=self._key(task_id, connection_id))

    def for_task(self, task_id: str) -> list[Subscription]:
        """Every subscription to ``task_id``: a Query on the table's partition key."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "task_id = :task",
            "ExpressionAttributeValues": to_attributes({":task": task_id}),
            "ConsistentRead": True,
        }
        return [_from_item(item) for item in self._query(kwargs)]

    def tasks_of_connection(self, connection_id: str) -> list[str]:
        """The task ids a connection subscribes to, through the ``by-connection`` GSI (eventually consistent)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": BY_CONNECTION_INDEX,
            "KeyConditionExpression": "connection_id = :connection",
            "ExpressionAttributeValues": to_attributes({":connection": connection_id}),
        }
        return [item["task_id"]["S"] for item in self._query(kwargs)]

    def remove_connection(self, connection_id: str) -> int:
        """Delete every subscription of a connection; returns how many were deleted.

        The GSI is eventually consistent, so a subscription written a moment before may survive: the
        fan-out removes it on its first ``GoneException`` and the TTL removes it in any case.
        """
        task_ids = self.tasks_of_connection(connection_id)
        for start in range(0, len(task_ids), _BATCH_WRITE_LIMIT):
            chunk = task_ids[start : start + _BATCH_WRITE_LIMIT]
            requests: list[dict[str, Any]] = [
                {"DeleteRequest": {"Key": self._key(task_id, connection_id)}} for task_id in chunk
            ]
            self._batch_write(requests)
        return len(task_ids)

    def _batch_write(self, requests: list[dict[str, Any]], attempts: int = 5) -> None:
        pending = {self.table_name: requests}
        for attempt in range(attempts):
            answer = self.client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(min(1.0, 0.05 * 2**attempt))
        # Whatever is left expires through the TTL; deleting subscriptions is best effort.

    def _query(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return aws.query_items(self.client, kwargs)
