"""Registered webhook endpoints in DynamoDB (rules: ``taskcast.webhooks.endpoints``).

The endpoints table (``ENDPOINTS_TABLE``) holds, with the TTL attribute ``expires_at`` where they expire:

- ``pk = "T#<tenant>"``, ``sk = "EP#<endpoint id>"``: an endpoint (URL, filter, enabled, why disabled,
  since when it fails). A tenant's endpoints are one Query, which is all the stream consumer reads;
- ``pk = "LOG#<endpoint id>"``, ``sk = <delivery id>``: the endpoint's delivery log, one item per attempt,
  with the job it sent (for replay and resend). Delivery ids sort by time, so newest first is a
  backwards Query;
- ``pk = "SENT#<endpoint id>"``, ``sk = "<task id>.<version>"``: the first attempt of that change was made
  (a replayed stream record's copy is dropped).

The secrets table (``ENDPOINT_SECRETS_TABLE``, ``pk`` = endpoint id) holds each endpoint's signing
secrets. It is apart so that the stream consumer, which matches filters but never signs, has no access
to it (template.yaml grants it to the REST and delivery functions only).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any

from botocore.exceptions import ClientError

from taskcast import aws
from taskcast.models import now_iso
from taskcast.store import from_attributes, query_items, to_attributes
from taskcast.webhooks.endpoints import (
    Endpoint,
    EndpointFilter,
    LoggedDelivery,
    SigningSecret,
    decode_cursor,
    encode_cursor,
    new_delivery_id,
    since_key,
)
from taskcast.webhooks.format import WebhookJob


def iso_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


ENDPOINT_PREFIX = "EP#"
DISABLED_BY_TENANT = "disabled by the tenant"


def tenant_key(tenant: str) -> str:
    return f"T#{tenant}"


def log_key(endpoint_id: str) -> str:
    return f"LOG#{endpoint_id}"


def sent_key(endpoint_id: str) -> str:
    return f"SENT#{endpoint_id}"


def _conditional_failed(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def endpoint_from_item(item: dict[str, Any]) -> Endpoint:
    data = from_attributes(item)
    failing = data.get("failing_since")
    busy = data.get("replay_busy_until")
    tested = data.get("last_test_ms")  # whole milliseconds: numbers are read back as integers
    return Endpoint(
        id=str(data["sk"])[len(ENDPOINT_PREFIX) :],
        tenant=str(data["tenant"]),
        url=str(data["url"]),
        filter=EndpointFilter.from_json(json.loads(data.get("filter_json") or "{}")),
        enabled=bool(data.get("enabled", True)),
        description=data.get("description"),
        created_at=str(data.get("created_at", "")),
        updated_at=str(data.get("updated_at", "")),
        disabled_reason=data.get("disabled_reason"),
        disabled_at=data.get("disabled_at"),
        failing_since=None if failing is None else float(failing),
        replay_busy_until=None if busy is None else float(busy),
        last_test_at=None if tested is None else int(tested) / 1000,
    )


class EndpointStore:
    """The endpoints themselves; every read and write names the tenant, so another tenant's id is absent."""

    def __init__(self, table_name: str, client: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.clock = clock

    def _key(self, tenant: str, endpoint_id: str) -> dict[str, Any]:
        return to_attributes({"pk": tenant_key(tenant), "sk": ENDPOINT_PREFIX + endpoint_id})

    def create(self, endpoint: Endpoint) -> None:
        item = {
            "pk": tenant_key(endpoint.tenant),
            "sk": ENDPOINT_PREFIX + endpoint.id,
            "tenant": endpoint.tenant,
            "url": endpoint.url,
            "filter_json": json.dumps(endpoint.filter.as_json()),
            "enabled": endpoint.enabled,
            "description": endpoint.description,
            "created_at": endpoint.created_at,
            "updated_at": endpoint.created_at,
        }
        self.client.put_item(
            TableName=self.table_name,
            Item=to_attributes({k: v for k, v in item.items() if v is not None}),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        answer = self.client.get_item(
            TableName=self.table_name, Key=self._key(tenant, endpoint_id), ConsistentRead=True
        )
        item = answer.get("Item")
        return endpoint_from_item(item) if item else None

    def list(self, tenant: str) -> list[Endpoint]:
        """The tenant's endpoints, oldest first."""
        request = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_attributes({":pk": tenant_key(tenant), ":prefix": ENDPOINT_PREFIX}),
        }
        endpoints = [endpoint_from_item(item) for item in query_items(self.client, request)]
        return sorted(endpoints, key=lambda e: (e.created_at, e.id))

    def update(
        self,
        tenant: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        filter: EndpointFilter | None = None,  # noqa: A002 - the API's field name
        description: str | None = None,
        clear_description: bool = False,
        enabled: bool | None = None,
    ) -> Endpoint | None:
        """Change the given fields; None when there is no such endpoint. Enabling clears why it was disabled
        and its failing clock; disabling records that the tenant did it."""
        sets: dict[str, Any] = {"updated_at": now_iso()}
        removes: list[str] = []
        if url is not None:
            sets["url"] = url
        if filter is not None:
            sets["filter_json"] = json.dumps(filter.as_json())
        if description is not None:
            sets["description"] = description
        elif clear_description:
            removes.append("description")
        if enabled is True:
            sets["enabled"] = True
            removes += ["disabled_reason", "disabled_at", "failing_since"]
        elif enabled is False:
            sets.update(enabled=False, disabled_reason=DISABLED_BY_TENANT, disabled_at=now_iso())
        names = {f"#{name}": name for name in [*sets, *removes]}
        expression = "SET " + ", ".join(f"#{name} = :{name}" for name in sets)
        if removes:
            expression += " REMOVE " + ", ".join(f"#{name}" for name in removes)
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key=self._key(tenant, endpoint_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_attributes({f":{name}": value for name, value in sets.items()}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return None
            raise
        return endpoint_from_item(answer["Attributes"])

    def delete(self, tenant: str, endpoint_id: str) -> bool:
        answer = self.client.delete_item(
            TableName=self.table_name, Key=self._key(tenant, endpoint_id), ReturnValues="ALL_OLD"
        )
        return bool(answer.get("Attributes"))

    def book_replay(self, endpoint: Endpoint, until: float) -> bool:
        """Record that the endpoint's replays are queued until ``until``, unless another replay booked since
        ``endpoint`` was read (False: read again and recompute)."""
        seen = None if endpoint.replay_busy_until is None else int(endpoint.replay_busy_until)
        return self._compare_and_set(endpoint, "replay_busy_until", seen, math.ceil(until))

    def book_test_event(self, endpoint: Endpoint, now: float) -> bool:
        """Record that a test event is sent now, unless another one was since ``endpoint`` was read (False)."""
        seen = None if endpoint.last_test_at is None else round(endpoint.last_test_at * 1000)
        return self._compare_and_set(endpoint, "last_test_ms", seen, int(now * 1000))

    def _compare_and_set(self, endpoint: Endpoint, attribute: str, seen: int | None, new: int) -> bool:
        """Set a number of the endpoint to ``new`` if it still holds ``seen`` (None: absent); False when another
        writer changed it first (or the endpoint is gone)."""
        condition = f"attribute_not_exists({attribute})" if seen is None else f"{attribute} = :seen"
        values: dict[str, Any] = {":new": {"N": str(new)}}
        if seen is not None:
            values[":seen"] = {"N": str(seen)}
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(endpoint.tenant, endpoint.id),
                UpdateExpression=f"SET {attribute} = :new",
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    # --- the failing clock (the delivery function) ----------------------------------------------------

    def failed(self, tenant: str, endpoint_id: str, now: float) -> Endpoint | None:
        """Start the failing clock unless it runs already; the endpoint as it is now (None: gone)."""
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key=self._key(tenant, endpoint_id),
                UpdateExpression="SET failing_since = if_not_exists(failing_since, :now)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": {"N": str(Decimal(str(round(now, 3))))}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return None
            raise
        return endpoint_from_item(answer["Attributes"])

    def succeeded(self, tenant: str, endpoint_id: str) -> None:
        """A success stops the failing clock (a write only when it runs)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(tenant, endpoint_id),
                UpdateExpression="REMOVE failing_since",
                ConditionExpression="attribute_exists(failing_since)",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise

    def disable(self, tenant: str, endpoint_id: str, reason: str) -> bool:
        """Switch an enabled endpoint off, saying why; False when it was off (or gone) already."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(tenant, endpoint_id),
                UpdateExpression=(
                    "SET enabled = :off, disabled_reason = :reason, disabled_at = :at REMOVE failing_since"
                ),
                ConditionExpression="enabled = :on",
                ExpressionAttributeValues=to_attributes(
                    {":off": False, ":on": True, ":reason": reason, ":at": now_iso()}
                ),
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True


class EndpointSecrets:
    """Each endpoint's signing secrets (the newest first). Never logged, never in the endpoints table."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")

    def put(self, endpoint_id: str, secrets: Sequence[SigningSecret]) -> None:
        stored = [{"secret": s.secret, "until": s.until} for s in secrets]
        self.client.put_item(
            TableName=self.table_name,
            Item=to_attributes({"pk": endpoint_id, "secrets_json": json.dumps(stored)}),
        )

    def get(self, endpoint_id: str) -> list[SigningSecret]:
        answer = self.client.get_item(
            TableName=self.table_name, Key=to_attributes({"pk": endpoint_id}), ConsistentRead=True
        )
        item = answer.get("Item")
        if not item:
            return []
        stored = json.loads(from_attributes(item)["secrets_json"])
        return [SigningSecret(str(s["secret"]), float(s.get("until") or 0.0)) for s in stored]

    def delete(self, endpoint_id: str) -> None:
        self.client.delete_item(TableName=self.table_name, Key=to_attributes({"pk": endpoint_id}))


@dataclass(frozen=True)
class EndpointDelivery:
    """One logged attempt to an endpoint, and the job it sent."""

    delivery_id: str
    entry: dict[str, Any]  # the public shape: /tasks/{id}/deliveries' plus id, task_id, duration_ms
    job: WebhookJob

    def logged(self) -> LoggedDelivery:
        return LoggedDelivery(self.delivery_id, str(self.entry["webhook_id"]), str(self.entry["outcome"]))


@dataclass(frozen=True)
class DeliveryPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


class EndpointDeliveryLog:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")

    def record_attempt(
        self,
        job: WebhookJob,
        *,
        outcome: str,
        status_code: int | None = None,
        error: str | None = None,
        duration_ms: int | None = None,
        now: float | None = None,
    ) -> str:
        """Log one attempt of ``job`` (or one not made: ``disabled``); its delivery id. A stream-handed first
        attempt also leaves its marker, so that a replayed stream record's copy is dropped."""
        moment = time.time() if now is None else now
        delivery_id = new_delivery_id(moment)
        entry: dict[str, Any] = {
            "id": delivery_id,
            "task_id": job.task_id,
            "webhook_id": job.webhook_id,
            "version": job.version,
            "attempt": job.attempt,
            "status_code": status_code,
            "at": iso_time(moment),
            "outcome": outcome,
        }
        if error:
            entry["error"] = error
        if duration_ms is not None:
            entry["duration_ms"] = duration_ms
        item = {
            "pk": log_key(job.endpoint_id),
            "sk": delivery_id,
            "entry_json": json.dumps(entry),
            "job_json": job.to_json(),
            "expires_at": job.expires_at,
        }
        self.client.put_item(TableName=self.table_name, Item=to_attributes(item))
        if job.from_stream and job.attempt == 1:
            marker = {"pk": sent_key(job.endpoint_id), "sk": f"{job.task_id}.{job.version}",
                      "expires_at": job.expires_at}
            self.client.put_item(TableName=self.table_name, Item=to_attributes(marker))
        return delivery_id

    def first_sent(self, endpoint_id: str, task_id: str, version: int) -> bool:
        answer = self.client.get_item(
            TableName=self.table_name,
            Key=to_attributes({"pk": sent_key(endpoint_id), "sk": f"{task_id}.{version}"}),
            ConsistentRead=True,
            ProjectionExpression="pk",
        )
        return "Item" in answer

    def page(self, endpoint_id: str, limit: int, cursor: str | None = None) -> DeliveryPage:
        """Newest first, ``limit`` at a time; ``next_cursor`` continues after the last item shown."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": to_attributes({":pk": log_key(endpoint_id)}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor is not None:
            request["ExclusiveStartKey"] = to_attributes({"pk": log_key(endpoint_id), "sk": decode_cursor(cursor)})
        answer = self.client.query(**request)
        items = [json.loads(from_attributes(item)["entry_json"]) for item in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        next_cursor = encode_cursor(last["sk"]["S"]) if last and items else None
        return DeliveryPage(items, next_cursor)

    def get(self, endpoint_id: str, delivery_id: str) -> EndpointDelivery | None:
        answer = self.client.get_item(
            TableName=self.table_name,
            Key=to_attributes({"pk": log_key(endpoint_id), "sk": delivery_id}),
            ConsistentRead=True,
        )
        item = answer.get("Item")
        return _delivery(item) if item else None

    def since(self, endpoint_id: str, epoch_s: float, max_items: int) -> list[EndpointDelivery]:
        """The logged attempts from ``epoch_s`` on, oldest first, at most ``max_items`` (a replay's reading
        stays bounded however busy the endpoint was)."""
        request = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk >= :since",
            "ExpressionAttributeValues": to_attributes({":pk": log_key(endpoint_id), ":since": since_key(epoch_s)}),
            "ConsistentRead": True,
        }
        return [_delivery(item) for item in islice(query_items(self.client, request), max_items)]


def _delivery(item: dict[str, Any]) -> EndpointDelivery:
    data = from_attributes(item)
    return EndpointDelivery(str(data["sk"]), json.loads(data["entry_json"]), WebhookJob.from_json(data["job_json"]))
