"""Storage: the DynamoDB codec, every key shape of both tables, and every store on them.

The tasks table holds, per partition key ``pk``:

- ``pk`` = task id, ``sk = "STATE"``: the current task, replaced whole on every change under a
  condition on ``version``;
- ``sk = "V#0000000001"`` …: the append-only history, one record per version, written in the same
  transaction as the state it records;
- ``sk = "FANOUT"``: the highest version already fanned out to WebSocket subscribers (``Markers``);
- ``sk = "WEBHOOK"``: present once a receiver answered ``410 Gone``: the task's callback is disabled;
- ``sk = "D#version#attempt"``: the webhook delivery log (``DeliveryLog``), one item per attempt;
- ``sk = "BEAT"``: an external worker's last heartbeat (``Heartbeats``), apart from ``STATE`` so that a beat
  raises no version and wakes no stream consumer (the stream's filter passes ``STATE`` only);
- ``pk`` = upload id, ``sk = "UPLOAD"``: an upload declaration (``taskcast.uploads``);
- ``pk = "ticket#<sha256>"``, ``sk = "TICKET"``: an unused WebSocket ticket (``taskcast.ws_tickets``).
- ``pk = "BREAKER#<tenant> <origin>"``, ``sk = "BREAKER"``: a webhook endpoint's circuit breaker (``Breakers``);
- ``pk = "SLOTS#<tenant>"``, ``sk = "SLOT#<n>"``: a tenant's webhook delivery slots (``DeliverySlots``).

The subscriptions table holds one item per (``task_id``, ``connection_id``) (``SubscriptionStore``), and
one connection lease per open connection: ``task_id = "#connections#<tenant>"``, ``connection_id`` the
connection's, and the counters of the limits (``BoundedCounter``): ``task_id = "#count#<name>"``,
``connection_id = "#"``, for subscribers per task and connections per tenant (a connection's
subscriptions are counted on its lease, attribute ``subscriptions``). ``#`` sorts before every
task id (task ids start with a letter or digit), so a connection's subscriptions are a key range of the
``by-connection`` GSI without its lease, and ``$disconnect`` deletes the lease with the subscriptions.
The tasks table also holds long-poll leases (``taskcast.long_polls``): ``pk = "#long-polls#<tenant>"``,
``sk`` = a request id.

Every item carries the TTL attribute ``expires_at``. Values that are arbitrary JSON (input, result,
error, history entries, log entries) are stored as JSON strings so that numbers keep their type.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from taskcast import aws
from taskcast.counters import BoundedCounter
from taskcast.models import Status, Task, history_entry, is_expired, now_iso
from taskcast.webhooks.breaker import BreakerState
from taskcast.webhooks.format import Outcome

# --- the key schema -------------------------------------------------------------------------------

TTL_ATTRIBUTE = "expires_at"
STATE = "STATE"
HISTORY_PREFIX = "V#"
FANOUT = "FANOUT"
WEBHOOK = "WEBHOOK"
DELIVERY_PREFIX = "D#"
UPLOAD = "UPLOAD"
TICKET = "TICKET"
BREAKER = "BREAKER"
BEAT = "BEAT"
SLOT_PREFIX = "SLOT#"
BY_CONNECTION_INDEX = "by-connection"  # subscriptions table GSI: connection_id → task_id

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def item_key(pk: str, sk: str) -> dict[str, str]:
    """A tasks-table key, plain (``to_attributes`` makes it a DynamoDB ``Key``)."""
    return {"pk": pk, "sk": sk}


def parse_item_key(keys: dict[str, Any]) -> tuple[str, str]:
    """``(pk, sk)`` of a tasks-table key in DynamoDB form (a stream record's ``Keys``); "" when absent."""
    return (keys.get("pk") or {}).get("S", ""), (keys.get("sk") or {}).get("S", "")


# The largest version history_key's ten digits hold; a larger one would sort outside the history's range.
MAX_VERSION = 9_999_999_999


def history_key(version: int) -> str:
    return f"{HISTORY_PREFIX}{version:010d}"


def delivery_key(version: int, attempt: int) -> str:
    return f"{DELIVERY_PREFIX}{version:010d}#{attempt:03d}"


def subscription_key(task_id: str, connection_id: str) -> dict[str, str]:
    """A subscriptions-table key, plain."""
    return {"task_id": task_id, "connection_id": connection_id}


class VersionConflict(Exception):
    """Another writer changed the task first; read it again and decide again."""


class TaskExists(Exception):
    pass


# --- the codec ------------------------------------------------------------------------------------


def to_attributes(data: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in data.items() if value is not None}


def from_attributes(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; taskcast only stores integers."""
    if isinstance(value, Decimal):
        return int(value)
    return value


def get_item(dynamodb: Any, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """One item by its plain key, read consistently; None when it is absent."""
    item: dict[str, Any] | None = dynamodb.get_item(
        TableName=table_name, Key=to_attributes(key), ConsistentRead=True
    ).get("Item")
    return item


class Owned(Protocol):
    @property
    def tenant(self) -> str: ...


OwnedT = TypeVar("OwnedT", bound=Owned)


def owned_by(record: OwnedT | None, tenant: str) -> OwnedT | None:
    """``record`` if it belongs to ``tenant``; None either way otherwise (no existence leak)."""
    return record if record is not None and record.tenant == tenant else None


def count_items(dynamodb: Any, request: dict[str, Any], enough: int, max_pages: int = 10) -> int:
    """How many items a Query matches, counting no further than ``enough`` (``Select=COUNT``, ``Limit``).

    Each page evaluates at most ``enough`` items and the pages are bounded, so the read cost is bounded
    whatever the partition holds; a count that stops early is a lower bound (enough to refuse or allow).
    """
    request = {**request, "Select": "COUNT", "Limit": max(1, enough)}
    count = 0
    for _ in range(max_pages):
        page = dynamodb.query(**request)
        count += int(page.get("Count", 0))
        if count >= enough or "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return count


def live_filter(now: float) -> dict[str, Any]:
    """A Query filter that skips items past their TTL (DynamoDB deletes them lazily, up to days later)."""
    return {
        "FilterExpression": "#ttl > :now",
        "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
        "ExpressionAttributeValues": {":now": {"N": str(int(now))}},
    }


def query_items(dynamodb: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item a DynamoDB Query answers, page after page."""
    request = dict(request)
    while True:
        page = dynamodb.query(**request)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --- tasks: STATE and history --------------------------------------------------------------------


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
        "token_sha256": task.token_sha256,
        "heartbeat_s": task.heartbeat_s or None,
        "worker_class": None if task.worker_class == "standard" else task.worker_class,
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
        token_sha256=data.get("token_sha256"),
        heartbeat_s=int(data.get("heartbeat_s", 0)),
        worker_class=data.get("worker_class", "standard"),
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
        return owned_by(self.get(task_id), tenant)

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
        return [json.loads(from_attributes(item)["entry_json"]) for item in query_items(self.client, kwargs)]


# --- external workers' heartbeats -------------------------------------------------------------

class Heartbeats:
    """When each external task's worker last showed it was alive (epoch seconds)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")

    def beat(self, task_id: str, at: float, expires_at: int) -> None:
        # A plain overwrite: beats of one task come from one worker, and an older one landing last costs at
        # most the time between two of its requests.
        item = {"pk": task_id, "sk": BEAT, "beat_at": Decimal(str(round(at, 3))), "expires_at": expires_at}
        self.client.put_item(TableName=self.table_name, Item=to_attributes(item))

    def last(self, task_id: str) -> float | None:
        item = get_item(self.client, self.table_name, item_key(task_id, BEAT))
        if item is None:
            return None
        return float(_deserializer.deserialize(item["beat_at"]))


# --- the push path's items: markers and the delivery log ----------------------------------------

def _conditional_failed(error: ClientError) -> bool:
    return aws.error_code(error) == "ConditionalCheckFailedException"


# DynamoDB's per-call limits of BatchGetItem and BatchWriteItem, and how often unprocessed keys are retried.
_BATCH_GET_KEYS = 100
_BATCH_WRITE_ITEMS = 25
_BATCH_TRIES = 5


class MarkersUnavailable(Exception):
    """DynamoDB left some marker keys unprocessed (throttled) after every retry."""


class Markers:
    """The per-task ``FANOUT`` and ``WEBHOOK`` items the push path keeps beside the task.

    ``FANOUT`` is advanced (conditionally, never backwards) after a version went out, so a replayed
    stream batch does not send it again. The delivery log also serves as a marker: once the first
    attempt of a version is logged, a replayed batch does not send that webhook again.
    """

    def __init__(self, table_name: str, client: Any = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self._sleep = sleep

    def _key(self, task_id: str, sort_key: str) -> dict[str, Any]:
        return to_attributes(item_key(task_id, sort_key))

    def _back_off(self, attempt: int) -> None:
        """Before retrying unprocessed keys, as DynamoDB asks: exponential, from 25 ms."""
        if attempt < _BATCH_TRIES - 1:
            self._sleep(0.025 * 2**attempt)

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

    def fanned_out_versions(self, task_ids: Iterable[str]) -> dict[str, int]:
        """The FANOUT marker of each task (0 when absent): ``BatchGetItem``, 100 keys a call.

        Raises ``MarkersUnavailable`` when DynamoDB keeps some keys unprocessed after a few tries.
        """
        wanted = sorted(set(task_ids))
        versions = dict.fromkeys(wanted, 0)
        for start in range(0, len(wanted), _BATCH_GET_KEYS):
            keys = [self._key(task_id, FANOUT) for task_id in wanted[start : start + _BATCH_GET_KEYS]]
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": "#pk, #version",
                    "ExpressionAttributeNames": {"#pk": "pk", "#version": "version"},
                }
            }
            for attempt in range(_BATCH_TRIES):
                answer = self.client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    versions[item["pk"]["S"]] = int(item["version"]["N"])
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._back_off(attempt)
            if request:
                raise MarkersUnavailable("FANOUT markers still unprocessed after retries")
        return versions

    def record_fanouts(self, versions: Mapping[str, tuple[int, int]]) -> None:
        """Set each task's FANOUT marker to ``(version, expires_at)``: ``BatchWriteItem``, 25 items a call.

        Unconditional (BatchWriteItem takes no condition), unlike ``advance_fanout``: the stream consumer
        is the only writer of a task's marker and handles one task in one invocation at a time (Lambda
        keeps a partition key on one lane, in order), and it writes only a version above the marker it
        read in that invocation.
        Raises ``MarkersUnavailable`` when DynamoDB keeps some items unprocessed after a few tries.
        """
        puts = [
            {"PutRequest": {"Item": to_attributes({**item_key(task_id, FANOUT), "version": v, TTL_ATTRIBUTE: e})}}
            for task_id, (v, e) in sorted(versions.items())
        ]
        for start in range(0, len(puts), _BATCH_WRITE_ITEMS):
            request: dict[str, Any] = {self.table_name: puts[start : start + _BATCH_WRITE_ITEMS]}
            for attempt in range(_BATCH_TRIES):
                answer = self.client.batch_write_item(RequestItems=request)
                request = answer.get("UnprocessedItems") or {}
                if not request:
                    break
                self._back_off(attempt)
            if request:
                raise MarkersUnavailable("FANOUT markers still unwritten after retries")

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
        data = {**item_key(task_id, WEBHOOK), "reason": reason, "at": now_iso(), TTL_ATTRIBUTE: expires_at}
        item = to_attributes(data)
        self.client.put_item(TableName=self.table_name, Item=item)


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


class DeliveryLog:
    """The webhook delivery log: one item per attempt, beside the task (``sk = D#version#attempt``)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")

    def record(self, task_id: str, tenant: str, expires_at: int, attempt: DeliveryAttempt) -> None:
        item = {
            **item_key(task_id, delivery_key(attempt.version, attempt.attempt)),
            "tenant": tenant,
            TTL_ATTRIBUTE: expires_at,
            "attempt_json": json.dumps(attempt.as_json()),
        }
        self.client.put_item(TableName=self.table_name, Item=to_attributes(item))

    def list(self, task_id: str) -> list[dict[str, Any]]:
        """Every attempt for the task, oldest first."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_attributes({":pk": task_id, ":prefix": DELIVERY_PREFIX}),
            "ConsistentRead": True,
        }
        entries = [json.loads(from_attributes(item)["attempt_json"]) for item in query_items(self.client, kwargs)]
        return sorted(entries, key=lambda entry: (entry["at"], entry["version"], entry["attempt"]))


class Breakers:
    """Webhook endpoints' circuit breakers (policy: ``taskcast.webhooks.breaker``), one item each.

    Failures are counted with an atomic ``ADD``; the other writes are last-writer-wins. Two invocations
    that open the same breaker at once write nearly the same state (at worst the cool-down grows one step
    early), and a success racing an opening at worst gives the endpoint one more probe: neither is worth
    a conditional write. The half-open probe is the exception: it is claimed conditionally, so only one
    invocation calls a recovering endpoint. Items expire a day after their last write.
    """

    KEEP_S = 86400

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")

    def _key(self, endpoint: str) -> dict[str, Any]:
        return to_attributes(item_key(f"{BREAKER}#{endpoint}", BREAKER))

    def _expiry(self, now: float) -> dict[str, str]:
        return {"N": str(int(now) + self.KEEP_S)}

    def get(self, endpoint: str) -> BreakerState:
        answer = self.client.get_item(TableName=self.table_name, Key=self._key(endpoint), ConsistentRead=True)
        return _breaker_state(answer.get("Item") or {})

    def count_failure(self, endpoint: str, now: float) -> BreakerState:
        answer = self.client.update_item(
            TableName=self.table_name,
            Key=self._key(endpoint),
            UpdateExpression="ADD failures :one SET expires_at = :expires",
            ExpressionAttributeValues={":one": {"N": "1"}, ":expires": self._expiry(now)},
            ReturnValues="ALL_NEW",
        )
        return _breaker_state(answer.get("Attributes") or {})

    def save(self, endpoint: str, state: BreakerState, now: float) -> None:
        item = {
            **self._key(endpoint),
            "failures": {"N": str(state.failures)},
            "open_until": {"N": repr(state.open_until)},
            "openings": {"N": str(state.openings)},
            "probe_until": {"N": repr(state.probe_until)},
            TTL_ATTRIBUTE: self._expiry(now),
        }
        self.client.put_item(TableName=self.table_name, Item=item)

    def claim_probe(self, endpoint: str, now: float, until: float) -> bool:
        """Become the one half-open probe of the endpoint, unless another invocation already is."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(endpoint),
                UpdateExpression="SET probe_until = :until",
                ConditionExpression="attribute_exists(pk) AND open_until <= :now "
                "AND (attribute_not_exists(probe_until) OR probe_until <= :now)",
                ExpressionAttributeValues={":until": {"N": repr(until)}, ":now": {"N": repr(now)}},
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True


def _breaker_state(item: dict[str, Any]) -> BreakerState:
    def number(name: str) -> float:
        return float(item[name]["N"]) if name in item else 0.0

    return BreakerState(
        failures=int(number("failures")),
        open_until=number("open_until"),
        openings=int(number("openings")),
        probe_until=number("probe_until"),
    )


class DeliverySlots:
    """A tenant's webhook attempts in flight, across every delivery invocation: at most ``cap`` at once.

    Each slot is an item leased until a time (the attempt's deadline plus a margin): taken with a
    conditional write when free or when its lease ran out (an invocation that died mid-attempt frees its
    slot that way), given back when the attempt ends.
    """

    def __init__(self, table_name: str, cap: int, client: Any = None) -> None:
        self.table_name = table_name
        self.cap = cap
        self.client = client or aws.client("dynamodb")

    def _key(self, tenant: str, slot: int) -> dict[str, Any]:
        return to_attributes(item_key(f"SLOTS#{tenant}", f"{SLOT_PREFIX}{slot}"))

    def _busy(self, tenant: str, now: float) -> set[int]:
        """The slots leased beyond ``now`` (one consistent read, so that a full tenant costs no write)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_attributes({":pk": f"SLOTS#{tenant}", ":prefix": SLOT_PREFIX}),
            "ConsistentRead": True,
        }
        busy: set[int] = set()
        for item in query_items(self.client, kwargs):
            if float(item.get("held_until", {}).get("N", "0")) > now:
                busy.add(int(item["sk"]["S"][len(SLOT_PREFIX) :]))
        return busy

    def take(self, tenant: str, now: float, lease_s: float) -> int | None:
        """The slot taken, or None when all ``cap`` are in use."""
        busy = self._busy(tenant, now)
        for slot in range(self.cap):
            if slot in busy:
                continue
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key=self._key(tenant, slot),
                    UpdateExpression="SET held_until = :until, expires_at = :expires",
                    ConditionExpression="attribute_not_exists(held_until) OR held_until <= :now",
                    ExpressionAttributeValues={
                        ":until": {"N": repr(now + lease_s)},
                        ":now": {"N": repr(now)},
                        ":expires": {"N": str(int(now + lease_s) + 3600)},
                    },
                )
            except ClientError as error:
                if _conditional_failed(error):
                    continue
                raise
            return slot
        return None

    def renew(self, tenant: str, slot: int, now: float, lease_s: float) -> None:
        """A new lease on a slot its holder passes to another attempt (``taskcast.webhooks.handoff``)."""
        self.client.update_item(
            TableName=self.table_name,
            Key=self._key(tenant, slot),
            UpdateExpression="SET held_until = :until, expires_at = :expires",
            ExpressionAttributeValues={
                ":until": {"N": repr(now + lease_s)},
                ":expires": {"N": str(int(now + lease_s) + 3600)},
            },
        )

    def give_back(self, tenant: str, slot: int) -> None:
        self.client.update_item(
            TableName=self.table_name,
            Key=self._key(tenant, slot),
            UpdateExpression="SET held_until = :free",
            ExpressionAttributeValues={":free": {"N": "0"}},
        )


# --- the subscriptions table -------------------------------------------------------------------------

# Lease items sort before every task id (which starts with a letter or digit): see the module docstring.
LEASE_PREFIX = "#"
_FIRST_TASK_ID = "0"
CONNECTIONS_PREFIX = f"{LEASE_PREFIX}connections#"
# API Gateway closes a WebSocket after 2 hours at most: a lease whose $disconnect was lost ends by then.
CONNECTION_LEASE_S = 2 * 3600 + 300


def connections_key(tenant: str) -> str:
    return f"{CONNECTIONS_PREFIX}{tenant}"


def subscribers_key(task_id: str) -> str:
    return f"{LEASE_PREFIX}subscribers#{task_id}"


def lease_key(tenant: str, connection_id: str) -> dict[str, str]:
    """The key of a connection's lease, which also carries the count of its subscriptions."""
    return subscription_key(connections_key(tenant), connection_id)


def counter_key(name: str) -> dict[str, str]:
    """The key of the counter item of ``name`` (a ``BoundedCounter``), in its own partition."""
    return subscription_key(f"{LEASE_PREFIX}count#{name}", LEASE_PREFIX)


# How long a subscribe handshake may hold back live changes. One that has not confirmed by then failed
# (its client is told to subscribe again): the consumer stops waiting for it and sends it nothing.
HANDSHAKE_HOLD_S = 5.0
# A handshake confirms only this far ahead of its hold's end, so that a consumer whose clock runs a little
# ahead never skips a version for a subscription that then confirms without it.
CONFIRM_MARGIN_S = 1.0


@dataclass(frozen=True)
class Subscription:
    """Which WebSocket connection listens to which task (see ``SubscriptionStore``)."""

    task_id: str
    connection_id: str
    tenant: str
    after_version: int = 0
    pending_until: float | None = None
    expires_at: int = 0

    def pending(self, now: float) -> bool:
        """True while the subscribe handshake may still be sending this connection its first messages."""
        return self.pending_until is not None and now < self.pending_until

    def abandoned(self, now: float) -> bool:
        """True when the handshake's hold ended without a confirm: the subscribe failed (its function died or
        ran out of time), its snapshot may never have been sent, and the client was told to try again."""
        return self.pending_until is not None and now >= self.pending_until


def _subscription_item(subscription: Subscription) -> dict[str, Any]:
    data: dict[str, Any] = {
        **subscription_key(subscription.task_id, subscription.connection_id),
        "tenant": subscription.tenant,
        "after_version": subscription.after_version,
        TTL_ATTRIBUTE: subscription.expires_at,
    }
    item = to_attributes(data)
    if subscription.pending_until is not None:
        # Fractional epoch seconds: stored as a number string so no precision is lost to int().
        item["pending_until"] = {"N": repr(round(subscription.pending_until, 3))}
    return item


def _subscription_from_item(item: dict[str, Any]) -> Subscription:
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
    """One item per (``task_id``, ``connection_id``) in the subscriptions table, so that fan-out is a Query by
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

    def __init__(self, table_name: str, client: Any = None, ttl_s: int = 3 * 3600) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.ttl_s = ttl_s
        self.counter = BoundedCounter(table_name, self.client)
        # A connection's subscriptions are counted on its lease item, beside the lease's own fields.
        self.per_connection = BoundedCounter(table_name, self.client, attribute="subscriptions", keep_ttl=True)

    def _key(self, task_id: str, connection_id: str) -> dict[str, Any]:
        return to_attributes(subscription_key(task_id, connection_id))

    def begin(
        self, task_id: str, connection_id: str, tenant: str, now: float | None = None, *, slot_taken: bool = False
    ) -> Subscription:
        """Write the subscription as pending: live changes wait until ``confirm`` (or the hold expires).

        ``slot_taken``: the caller took its slots (the task's, the connection's); if the subscription
        existed already (a second subscribe to the same task) they are given back, so each item holds one.
        """
        now = time.time() if now is None else now
        subscription = Subscription(
            task_id=task_id,
            connection_id=connection_id,
            tenant=tenant,
            after_version=0,
            pending_until=round(now + HANDSHAKE_HOLD_S, 3),  # as stored: ``confirm`` matches it exactly
            expires_at=int(now) + self.ttl_s,
        )
        answer = self.client.put_item(
            TableName=self.table_name, Item=_subscription_item(subscription), ReturnValues="ALL_OLD"
        )
        if slot_taken and answer.get("Attributes"):
            self.give_back_subscriber_slot(task_id)
            self.give_back_connection_slot(connection_id, tenant)
        return subscription

    def confirm(self, begun: Subscription, after_version: int, now: float | None = None) -> bool:
        """End the handshake ``begin`` started: from now on the consumer sends this connection versions
        > ``after_version``.

        False when the handshake failed instead: its hold has (almost) ended, so the consumer may already
        treat it as abandoned; or the subscription is gone or was begun again meanwhile (unsubscribed,
        disconnected, or a newer subscribe of the same connection, whose own handshake confirms it).
        """
        now = time.time() if now is None else now
        if begun.pending_until is None or now + CONFIRM_MARGIN_S >= begun.pending_until:
            return False
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(begun.task_id, begun.connection_id),
                UpdateExpression="SET after_version = :after REMOVE pending_until",
                ConditionExpression="pending_until = :mine",
                ExpressionAttributeValues={
                    ":after": {"N": str(after_version)},
                    ":mine": _subscription_item(begun)["pending_until"],
                },
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
        return _subscription_from_item(item) if item else None

    def remove(self, task_id: str, connection_id: str) -> bool:
        """Delete a subscription (or a connection's lease) and give its counts back; False if it was not there."""
        answer = self.client.delete_item(
            TableName=self.table_name, Key=self._key(task_id, connection_id), ReturnValues="ALL_OLD"
        )
        old = answer.get("Attributes")
        if not old:
            return False
        if task_id.startswith(CONNECTIONS_PREFIX):
            if "tenant" in old:  # written by open_connection, so counted (a count-only lease never was)
                self.counter.give_back(counter_key(task_id))
        elif not task_id.startswith(LEASE_PREFIX):
            self.give_back_subscriber_slot(task_id)
            self.give_back_connection_slot(connection_id, old.get("tenant", {}).get("S", ""))
        return True

    def for_task(self, task_id: str) -> list[Subscription]:
        """Every subscription to ``task_id``: a Query on the table's partition key."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "task_id = :task",
            "ExpressionAttributeValues": to_attributes({":task": task_id}),
            "ConsistentRead": True,
        }
        return [_subscription_from_item(item) for item in self._query(kwargs)]

    def count_for_task(self, task_id: str, enough: int, now: float | None = None) -> int:
        """Live subscriptions of ``task_id``, counted up to ``enough`` (a bounded ``Select=COUNT`` Query)."""
        now = time.time() if now is None else now
        filters = live_filter(now)
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "task_id = :task",
            "ConsistentRead": True,
            **filters,
            "ExpressionAttributeValues": {**filters["ExpressionAttributeValues"], ":task": {"S": task_id}},
        }
        return count_items(self.client, request, enough)

    def count_for_connection(self, connection_id: str, enough: int) -> int:
        """The connection's subscriptions (its lease left out), counted up to ``enough``, through the GSI.

        The GSI is eventually consistent: subscriptions made in the last moment may not be counted yet.
        """
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": BY_CONNECTION_INDEX,
            "KeyConditionExpression": "connection_id = :connection AND task_id >= :first",
            "ExpressionAttributeValues": to_attributes({":connection": connection_id, ":first": _FIRST_TASK_ID}),
        }
        return count_items(self.client, request, enough)

    def take_subscriber_slot(self, task_id: str, limit: int) -> bool:
        """Count one more subscriber of ``task_id`` if it stays within ``limit`` (one conditional write)."""
        return self.counter.take(
            counter_key(subscribers_key(task_id)),
            limit,
            self.ttl_s,
            recount=lambda: self.count_for_task(task_id, enough=limit + 1),
        )

    def give_back_subscriber_slot(self, task_id: str) -> None:
        self.counter.give_back(counter_key(subscribers_key(task_id)))

    def take_connection_slot(self, connection_id: str, tenant: str, limit: int) -> bool:
        """Count one more subscription of the connection, on its lease, if it stays within ``limit``."""
        return self.per_connection.take(
            lease_key(tenant, connection_id),
            limit,
            CONNECTION_LEASE_S,
            recount=lambda: self.count_for_connection(connection_id, enough=limit + 1),
        )

    def give_back_connection_slot(self, connection_id: str, tenant: str) -> None:
        if tenant:
            self.per_connection.give_back(lease_key(tenant, connection_id))

    def open_connection(self, connection_id: str, tenant: str, limit: int, now: float | None = None) -> bool:
        """Count the connection against its tenant's ``limit`` and write its lease; False when refused.

        The lease expires on its own after API Gateway's longest connection; the count is a conditional
        write, repaired from the live leases when it refuses (``BoundedCounter``).
        """
        now = time.time() if now is None else now
        admitted = self.counter.take(
            counter_key(connections_key(tenant)),
            limit,
            CONNECTION_LEASE_S,
            recount=lambda: self.count_connections(tenant, enough=limit + 1),
        )
        if admitted:
            lease = {**lease_key(tenant, connection_id), "tenant": tenant, TTL_ATTRIBUTE: int(now) + CONNECTION_LEASE_S}
            self.client.put_item(TableName=self.table_name, Item=to_attributes(lease))
        return admitted

    def count_connections(self, tenant: str, enough: int, now: float | None = None) -> int:
        """The tenant's live connection leases, counted up to ``enough``."""
        now = time.time() if now is None else now
        filters = live_filter(now)
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "task_id = :key",
            "ConsistentRead": True,
            **filters,
            "ExpressionAttributeValues": {
                **filters["ExpressionAttributeValues"],
                ":key": {"S": connections_key(tenant)},
            },
        }
        return count_items(self.client, request, enough)

    def tasks_of_connection(self, connection_id: str) -> list[str]:
        """The task ids a connection subscribes to, through the ``by-connection`` GSI (eventually consistent);
        the connection's lease is among them, so that ``remove_connection`` deletes it too."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": BY_CONNECTION_INDEX,
            "KeyConditionExpression": "connection_id = :connection",
            "ExpressionAttributeValues": to_attributes({":connection": connection_id}),
        }
        return [item["task_id"]["S"] for item in self._query(kwargs)]

    def remove_connection(self, connection_id: str, tenant: str | None = None) -> int:
        """Delete every subscription of a connection, and its lease; returns how many items were deleted.

        One by one, so that each count is given back exactly once (``$disconnect`` and the fan-out's
        ``GoneException`` cleanup may both get here). The GSI is eventually consistent, so a subscription
        written a moment before may survive: the fan-out removes it on its first ``GoneException`` and the
        TTL removes it in any case. With ``tenant`` the lease is deleted by its key even if the GSI does not
        show it yet.
        """
        task_ids = self.tasks_of_connection(connection_id)
        if tenant and connections_key(tenant) not in task_ids:
            task_ids.append(connections_key(tenant))
        return sum(self.remove(task_id, connection_id) for task_id in task_ids)

    def _query(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return query_items(self.client, kwargs)
