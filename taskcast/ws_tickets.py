"""WebSocket tickets: short-lived, single-use stand-ins for the API key on ``$connect`` (``?ticket=``).

``POST /ws-tickets`` issues one; the ``$connect`` authorizer redeems it. A ticket is 256 random bits,
URL-safe; only its SHA-256 is stored (a leaked table or log line yields nothing usable), in the tasks
table beside the tasks (``pk = "ticket#<sha256 hex>"``, ``sk = "TICKET"``) with the tenant and the TTL
attribute. Redeeming deletes the item under a condition (present and not yet expired), so of two
connects with one ticket exactly one wins, and an expired ticket is refused before DynamoDB's TTL sweep
removes it. The stream consumer's filter (``sk = "STATE"``) keeps these items off the push path.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from taskcast import aws
from taskcast.store import TICKET, TTL_ATTRIBUTE, item_key, to_attributes

TICKET_PREFIX = "wst_"
DEFAULT_TTL_S = 60
MAX_TTL_S = 300
# "wst_" + 43 URL-safe base64 characters (32 bytes); anything else is refused without a DynamoDB call.
_TICKET_SHAPE = re.compile(r"^wst_[A-Za-z0-9_-]{43}$")


def new_ticket() -> str:
    return TICKET_PREFIX + secrets.token_urlsafe(32)


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def well_formed(ticket: str) -> bool:
    return bool(_TICKET_SHAPE.match(ticket))


@dataclass(frozen=True)
class IssuedTicket:
    ticket: str
    tenant: str
    expires_at: float  # epoch seconds


class TicketStore:
    def __init__(self, table_name: str, client: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.clock = clock

    def issue(self, tenant: str, ttl_s: int = DEFAULT_TTL_S) -> IssuedTicket:
        if not 1 <= ttl_s <= MAX_TTL_S:
            raise ValueError(f"a ticket lives 1 to {MAX_TTL_S} seconds")
        ticket = new_ticket()
        expires_at = self.clock() + ttl_s
        item = {
            **item_key(f"ticket#{ticket_hash(ticket)}", TICKET),
            "tenant": tenant,
            # The TTL attribute (whole seconds, rounded up so the sweep never runs early) and the exact expiry.
            TTL_ATTRIBUTE: math.ceil(expires_at),
            "valid_until_ms": int(expires_at * 1000),
        }
        self.client.put_item(
            TableName=self.table_name, Item=to_attributes(item), ConditionExpression="attribute_not_exists(pk)"
        )
        return IssuedTicket(ticket=ticket, tenant=tenant, expires_at=expires_at)

    def redeem(self, ticket: str) -> str | None:
        """The tenant of a valid ticket, which is used up by this call; None when it is unknown, used or expired."""
        if not well_formed(ticket):
            return None
        try:
            answer = self.client.delete_item(
                TableName=self.table_name,
                Key=to_attributes(item_key(f"ticket#{ticket_hash(ticket)}", TICKET)),
                ConditionExpression="attribute_exists(pk) AND valid_until_ms > :now",
                ExpressionAttributeValues=to_attributes({":now": int(self.clock() * 1000)}),
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if aws.error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        tenant = answer.get("Attributes", {}).get("tenant", {}).get("S")
        return tenant if isinstance(tenant, str) and tenant else None
