"""Long-poll leases: how many requests one tenant holds at once, counted in DynamoDB across every
REST function environment.

Each held request writes a lease item beside the tasks (``pk = "#long-polls#<tenant>"``, ``sk`` = a
request id) that expires a few seconds after the longest hold, counts the tenant's live leases (its own
included, a bounded ``Select=COUNT`` Query), and deletes its lease when the hold ends. A function killed
mid-hold leaves a lease that stops counting at its ``expires_at``: no slot leaks for longer than a hold.
The tasks stream carries lease writes, but the consumer's filter passes only ``sk = "STATE"`` records.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from taskcast import aws
from taskcast.limits import within
from taskcast.store import LEASE_PREFIX, TTL_ATTRIBUTE, count_items, item_key, live_filter, to_attributes

LONG_POLLS_PREFIX = f"{LEASE_PREFIX}long-polls#"
# A lease outlives its hold by this much (the answer after the hold, clock skew between environments).
LEASE_MARGIN_S = 5


def long_polls_key(tenant: str) -> str:
    return f"{LONG_POLLS_PREFIX}{tenant}"


class LongPollLeases:
    def __init__(self, table_name: str, client: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.clock = clock

    def acquire(self, tenant: str, lease_id: str, hold_s: float, limit: int) -> bool:
        """Take a slot for a hold of ``hold_s``; False (and nothing left behind) when the tenant has none free.

        Lease first, then count: requests arriving together cannot all slip under the limit.
        """
        now = self.clock()
        data = {
            **item_key(long_polls_key(tenant), lease_id),
            "tenant": tenant,
            TTL_ATTRIBUTE: math.ceil(now + hold_s) + LEASE_MARGIN_S,
        }
        self.client.put_item(TableName=self.table_name, Item=to_attributes(data))
        if within(self.count(tenant, enough=limit + 1, now=now), limit):
            return True
        self.release(tenant, lease_id)
        return False

    def release(self, tenant: str, lease_id: str) -> None:
        self.client.delete_item(
            TableName=self.table_name, Key=to_attributes(item_key(long_polls_key(tenant), lease_id))
        )

    def count(self, tenant: str, enough: int, now: float | None = None) -> int:
        """The tenant's live leases, counted up to ``enough``."""
        filters = live_filter(self.clock() if now is None else now)
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :key",
            "ConsistentRead": True,
            **filters,
            "ExpressionAttributeValues": {
                **filters["ExpressionAttributeValues"],
                ":key": {"S": long_polls_key(tenant)},
            },
        }
        return count_items(self.client, request, enough)
