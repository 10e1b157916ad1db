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


class BoundedCounter:
    def __init__(
        self,
        table_name: str,
        client: Any = None,
        *,
        clock: Callable[[], float] = time.time,
        recount_every_s: float = RECOUNT_EVERY_S,
        attribute: str = "count",
        keep_ttl: bool = False,
    ) -> None:
        """``attribute``: where the count lives (the item may be something else too, e.g. a lease);
        ``keep_ttl``: leave an existing ``expires_at`` alone instead of extending it on each take."""
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.clock = clock
        self.recount_every_s = recount_every_s
        self.attribute = attribute
        self.keep_ttl = keep_ttl

    def take(self, key: dict[str, str], limit: int, ttl_s: int, recount: Callable[[], int]) -> bool:
        """One more, if the count stays within ``limit``; ``recount`` answers the true count when refused."""
        if self._add_within(key, limit, ttl_s):
            return True
        if not self._claim_recount(key):
            return False
        self._set(key, recount())
        return self._add_within(key, limit, ttl_s)

    def give_back(self, key: dict[str, str]) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=to_attributes(key),
                UpdateExpression="ADD #count :minus_one",
                ConditionExpression="#count > :zero",
                ExpressionAttributeNames={"#count": self.attribute},
                ExpressionAttributeValues={":minus_one": {"N": "-1"}, ":zero": {"N": "0"}},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise

    def value(self, key: dict[str, str]) -> int:
        item = self.client.get_item(TableName=self.table_name, Key=to_attributes(key), ConsistentRead=True).get("Item")
        return int(item[self.attribute]["N"]) if item and self.attribute in item else 0

    def _add_within(self, key: dict[str, str], limit: int, ttl_s: int) -> bool:
        if limit < 1:
            return False
        expires = "if_not_exists(#ttl, :expires)" if self.keep_ttl else ":expires"
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=to_attributes(key),
                UpdateExpression=f"ADD #count :one SET #ttl = {expires}",
                ConditionExpression="attribute_not_exists(#count) OR #count < :limit",
                ExpressionAttributeNames={"#count": self.attribute, "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    ":expires": {"N": str(int(self.clock()) + ttl_s)},
                },
            )
        except ClientError as error:
            if _conditional_failed(error):
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
            ExpressionAttributeNames={"#count": self.attribute},
            ExpressionAttributeValues={":count": {"N": str(max(0, count))}},
        )
