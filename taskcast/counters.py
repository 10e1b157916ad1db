"""A bounded counter in one DynamoDB item: taken with a conditional ``ADD`` while below a limit, given back
when what it counts goes away, and made exact again by a recount when it refuses.

Checking a limit then costs one small write, whatever the count. The counter may drift upwards when a
give-back is lost (a ``$disconnect`` that never came, a subscription that expired by TTL); it can only
refuse too early, never let too many in, and the recount that follows a refusal (the caller's bounded
Query over the items it counts, at most once per ``recount_every_s``) repairs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from taskcast import aws

RECOUNT_EVERY_S = 60.0
TTL_ATTRIBUTE = "expires_at"  # the tables' TTL attribute (taskcast.store)


def to_attributes(key: dict[str, str]) -> dict[str, Any]:
    """A key of string attributes in DynamoDB form."""
    return {name: {"S": value} for name, value in key.items()}


def _conditional_failed(error: ClientError) -> bool:
    return aws.error_code(error) == "ConditionalCheckFailedException"


def _condition_cancelled(error: ClientError) -> bool:
    """A transaction cancelled because the counter's condition failed (not a conflict or a throttle)."""
    if aws.error_code(error) != "TransactionCanceledException":
        return False
    reasons = error.response.get("CancellationReasons") or []
    return bool(reasons) and reasons[0].get("Code") == "ConditionalCheckFailed"


class BoundedCounter:
    def __init__(
        self,
        table_name: str,
        client: Any = None,
        *,
        clock: Callable[[], float] = time.time,
        recount_every_s: float = RECOUNT_EVERY_S,
    ) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.clock = clock
        self.recount_every_s = recount_every_s

    def take(
        self,
        key: dict[str, str],
        limit: int,
        ttl_s: int,
        recount: Callable[[], int],
        with_item: dict[str, Any] | None = None,
    ) -> bool:
        """One more, if the count stays within ``limit``; ``recount`` answers the true count when refused.

        ``with_item`` (DynamoDB form) is written in the same transaction, only when the count is taken.
        """
        if self._add_within(key, limit, ttl_s, with_item):
            return True
        if not self._claim_recount(key):
            return False
        self._set(key, recount())
        return self._add_within(key, limit, ttl_s, with_item)

    def give_back(self, key: dict[str, str]) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=to_attributes(key),
                UpdateExpression="ADD #count :minus_one",
                ConditionExpression="#count > :zero",
                ExpressionAttributeNames={"#count": "count"},
                ExpressionAttributeValues={":minus_one": {"N": "-1"}, ":zero": {"N": "0"}},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise

    def value(self, key: dict[str, str]) -> int:
        item = self.client.get_item(TableName=self.table_name, Key=to_attributes(key), ConsistentRead=True).get("Item")
        return int(item["count"]["N"]) if item and "count" in item else 0

    def _add_within(self, key: dict[str, str], limit: int, ttl_s: int, with_item: dict[str, Any] | None) -> bool:
        if limit < 1:
            return False
        update: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": to_attributes(key),
            "UpdateExpression": "ADD #count :one SET #ttl = :expires",
            "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
            "ExpressionAttributeNames": {"#count": "count", "#ttl": TTL_ATTRIBUTE},
            "ExpressionAttributeValues": {
                ":one": {"N": "1"},
                ":limit": {"N": str(limit)},
                ":expires": {"N": str(int(self.clock()) + ttl_s)},
            },
        }
        try:
            if with_item is None:
                self.client.update_item(**update)
            else:
                put = {"TableName": self.table_name, "Item": with_item}
                self.client.transact_write_items(TransactItems=[{"Update": update}, {"Put": put}])
        except ClientError as error:
            if _conditional_failed(error) or _condition_cancelled(error):
                return False
            raise
        return True

    def _claim_recount(self, key: dict[str, str]) -> bool:
        """True for one caller per ``recount_every_s``: a tenant hammering a limit cannot make every try a Query."""
        now = self.clock()
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=to_attributes(key),
                UpdateExpression="SET recounted_at = :now",
                ConditionExpression="attribute_not_exists(recounted_at) OR recounted_at < :due",
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":due": {"N": str(int(now - self.recount_every_s))},
                },
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def _set(self, key: dict[str, str], count: int) -> None:
        self.client.update_item(
            TableName=self.table_name,
            Key=to_attributes(key),
            UpdateExpression="SET #count = :count",
            ExpressionAttributeNames={"#count": "count"},
            ExpressionAttributeValues={":count": {"N": str(max(0, count))}},
        )
