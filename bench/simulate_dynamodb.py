"""A fake low-level DynamoDB client (``boto3.client("dynamodb")``'s methods) holding items in memory.

Items are kept and answered in DynamoDB's attribute-value form. Implemented: ``get_item``, ``put_item``,
``update_item``, ``delete_item``, ``query`` (key conditions on the table or a global secondary index,
``Limit``, ``Select="COUNT"``, ``ScanIndexForward``, ``ExclusiveStartKey``, filters, projections),
``batch_get_item``, ``batch_write_item``, ``transact_write_items``. Conditions are evaluated
(``bench.simulate_expressions``); a failed one raises the same ``ClientError`` codes as DynamoDB.
Any other operation raises ``NotImplementedError`` naming it. Every call first waits a latency drawn
by its ``Wire`` and is counted there by operation name (``GetItem``, ``Query``, ...).

Not simulated (none changes the throughput figure): capacity, throttling, item size limits,
eventual consistency of indexes (a GSI query sees every write at once), ``UnprocessedItems``/``Keys``
(always empty), ``ReturnConsumedCapacity``.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from bench import simulate_expressions as expressions
from bench.simulate_latency import Latency, Wire

Item = dict[str, Any]
KeyTuple = tuple[Any, ...]
F = TypeVar("F", bound=Callable[..., Any])
_EXPRESSIONS = ("KeyConditionExpression", "FilterExpression", "ConditionExpression", "UpdateExpression",
                "ProjectionExpression")


def _validated(operation: str) -> Callable[[F], F]:
    """Check a request's expressions as DynamoDB does first; a bad one answers ValidationException."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def call(self: Any, **request: Any) -> Any:
            try:
                for spec in _expression_specs(request):
                    expressions.validate(
                        [spec[name] for name in _EXPRESSIONS if spec.get(name)],
                        spec.get("ExpressionAttributeNames"),
                        spec.get("ExpressionAttributeValues"),
                    )
                return method(self, **request)
            except expressions.ExpressionError as error:
                raise client_error(operation, "ValidationException", str(error)) from None

        return call  # type: ignore[return-value]

    return decorate


def _expression_specs(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The parts of a request that carry expressions: itself, each transaction action, each batch table."""
    if "TransactItems" in request:
        return [spec for action in request["TransactItems"] for spec in action.values()]
    if "RequestItems" in request:
        return [spec for spec in request["RequestItems"].values() if isinstance(spec, Mapping)]
    return [request]


def client_error(operation: str, code: str, message: str, status: int = 400, **extra: Any) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, operation)


def _sort_value(value: Mapping[str, Any] | None) -> Any:
    if value is None:
        return ""
    (kind, raw), = value.items()
    return Decimal(raw) if kind == "N" else raw


class TableSchema:
    """A table's keys (and its global secondary indexes'), from ``create_table`` arguments."""

    def __init__(self, args: Mapping[str, Any]) -> None:
        self.name: str = args["TableName"]
        self.hash_key, self.range_key = _keys(args["KeySchema"])
        indexes = [*args.get("GlobalSecondaryIndexes", []), *args.get("LocalSecondaryIndexes", [])]
        self.indexes: dict[str, tuple[str, str | None]] = {index["IndexName"]: _keys(index["KeySchema"])
                                                           for index in indexes}
        # The attributes an index holds beyond the keys: None for all of them.
        self.projected: dict[str, set[str] | None] = {index["IndexName"]: _projected(index) for index in indexes}

    def key_of(self, item: Mapping[str, Any]) -> KeyTuple:
        return (_sort_value(item.get(self.hash_key)), _sort_value(item.get(self.range_key)) if self.range_key else None)

    def key_attributes(self, hash_key: str, range_key: str | None, item: Mapping[str, Any]) -> Item:
        return {name: item[name] for name in (hash_key, range_key) if name is not None and name in item}


def _projected(index: Mapping[str, Any]) -> set[str] | None:
    projection = index.get("Projection") or {}
    kind = projection.get("ProjectionType", "ALL")
    if kind == "ALL":
        return None
    return set(projection.get("NonKeyAttributes", [])) if kind == "INCLUDE" else set()


def _keys(schema: Iterable[Mapping[str, str]]) -> tuple[str, str | None]:
    hash_key = next(entry["AttributeName"] for entry in schema if entry["KeyType"] == "HASH")
    range_key = next((entry["AttributeName"] for entry in schema if entry["KeyType"] == "RANGE"), None)
    return hash_key, range_key


class FakeDynamoDB:
    """The fake client. ``tables``: ``create_table`` keyword arguments (``taskcast.local.template``'s)."""

    def __init__(self, tables: Iterable[Mapping[str, Any]], latency: Latency, seed: int | None = None) -> None:
        self.wire = Wire(latency, seed)
        self.schemas = {args["TableName"]: TableSchema(args) for args in tables}
        # Per table, per partition (hash key value): the items by their whole key.
        self._items: dict[str, dict[Any, dict[KeyTuple, Item]]] = {name: {} for name in self.schemas}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise NotImplementedError(f"the simulated DynamoDB client does not implement {name}")

    def unmetered(self) -> FakeDynamoDB:
        """The same tables without latency or counting: for the writers the simulation stands in for."""
        view = copy.copy(self)
        view.wire = Wire(Latency(0.0, 0.0))
        return view

    def items(self, table: str) -> list[Item]:
        with self._lock:
            return copy.deepcopy([item for partition in self._items[table].values() for item in partition.values()])

    def _get(self, table: str, key: KeyTuple) -> Item | None:
        return self._items[table].get(key[0], {}).get(key)

    def _store(self, table: str, key: KeyTuple, item: Item) -> None:
        self._items[table].setdefault(key[0], {})[key] = item

    def _remove(self, table: str, key: KeyTuple) -> None:
        partition = self._items[table].get(key[0])
        if partition is not None:
            partition.pop(key, None)
            if not partition:
                del self._items[table][key[0]]

    # --- helpers
    def _schema(self, table: str, operation: str) -> TableSchema:
        if table not in self.schemas:
            raise client_error(operation, "ResourceNotFoundException", "Requested resource not found")
        return self.schemas[table]

    def _key(self, schema: TableSchema, key: Mapping[str, Any], operation: str) -> KeyTuple:
        expected = {schema.hash_key, *([schema.range_key] if schema.range_key else [])}
        if set(key) != expected:
            raise client_error(operation, "ValidationException", "The provided key element does not match the schema")
        return schema.key_of(key)

    @staticmethod
    def _check(operation: str, current: Item | None, request: Mapping[str, Any]) -> bool:
        text = request.get("ConditionExpression")
        if not text:
            return True
        predicate = expressions.condition(
            text, request.get("ExpressionAttributeNames"), request.get("ExpressionAttributeValues")
        )
        return predicate(current or {})

    @staticmethod
    def _project(item: Item, request: Mapping[str, Any]) -> Item:
        text = request.get("ProjectionExpression")
        if not text:
            return copy.deepcopy(item)
        names = expressions.projection(text, request.get("ExpressionAttributeNames"))
        return {name: copy.deepcopy(item[name]) for name in names if name in item}

    # --- single items
    @_validated("GetItem")
    def get_item(self, **request: Any) -> dict[str, Any]:
        self.wire.call("GetItem")
        schema = self._schema(request["TableName"], "GetItem")
        key = self._key(schema, request["Key"], "GetItem")
        with self._lock:
            item = self._get(schema.name, key)
            return {"Item": self._project(item, request)} if item is not None else {}

    @_validated("PutItem")
    def put_item(self, **request: Any) -> dict[str, Any]:
        self.wire.call("PutItem")
        with self._lock:
            old = self._put(request, "PutItem")
        return _returned(old, request)

    def _put(self, request: Mapping[str, Any], operation: str) -> Item | None:
        schema = self._schema(request["TableName"], operation)
        item = request["Item"]
        key = self._key(schema, schema.key_attributes(schema.hash_key, schema.range_key, item), operation)
        current = self._get(schema.name, key)
        if not self._check(operation, current, request):
            raise client_error(operation, "ConditionalCheckFailedException", "The conditional request failed")
        self._store(schema.name, key, copy.deepcopy(item))
        return current

    @_validated("UpdateItem")
    def update_item(self, **request: Any) -> dict[str, Any]:
        self.wire.call("UpdateItem")
        with self._lock:
            old, new = self._update(request, "UpdateItem")
        returned = request.get("ReturnValues", "NONE")
        if returned == "ALL_NEW":
            return {"Attributes": copy.deepcopy(new)}
        if returned == "ALL_OLD":
            return {"Attributes": copy.deepcopy(old)} if old else {}
        if returned != "NONE":
            raise NotImplementedError(f"UpdateItem ReturnValues={returned} is not simulated")
        return {}

    def _update(self, request: Mapping[str, Any], operation: str) -> tuple[Item | None, Item]:
        schema = self._schema(request["TableName"], operation)
        key = self._key(schema, request["Key"], operation)
        current = self._get(schema.name, key)
        if not self._check(operation, current, request):
            raise client_error(operation, "ConditionalCheckFailedException", "The conditional request failed")
        new = copy.deepcopy(current) if current is not None else copy.deepcopy(dict(request["Key"]))
        if request.get("UpdateExpression"):
            change = expressions.update(
                request["UpdateExpression"],
                request.get("ExpressionAttributeNames"),
                request.get("ExpressionAttributeValues"),
            )
            change(new)
        self._store(schema.name, key, new)
        return current, new

    @_validated("DeleteItem")
    def delete_item(self, **request: Any) -> dict[str, Any]:
        self.wire.call("DeleteItem")
        with self._lock:
            old = self._delete(request, "DeleteItem")
        return _returned(old, request)

    def _delete(self, request: Mapping[str, Any], operation: str) -> Item | None:
        schema = self._schema(request["TableName"], operation)
        key = self._key(schema, request["Key"], operation)
        current = self._get(schema.name, key)
        if not self._check(operation, current, request):
            raise client_error(operation, "ConditionalCheckFailedException", "The conditional request failed")
        self._remove(schema.name, key)
        return current

    # --- queries
    @_validated("Query")
    def query(self, **request: Any) -> dict[str, Any]:
        self.wire.call("Query")
        schema = self._schema(request["TableName"], "Query")
        index = request.get("IndexName")
        if index is not None and index not in schema.indexes:
            raise client_error("Query", "ValidationException", f"The table does not have the specified index: {index}")
        hash_key, range_key = schema.indexes[index] if index else (schema.hash_key, schema.range_key)
        if "KeyConditionExpression" not in request:
            raise NotImplementedError("Query without KeyConditionExpression (KeyConditions) is not simulated")
        names, values = request.get("ExpressionAttributeNames"), request.get("ExpressionAttributeValues")
        mentioned = expressions.key_condition_names(request["KeyConditionExpression"], names)
        if hash_key not in mentioned or not mentioned <= {hash_key, range_key}:
            raise client_error("Query", "ValidationException", "Query condition missed key schema element")
        matches = expressions.condition(request["KeyConditionExpression"], names, values)
        with self._lock:
            if index:  # an index is not kept apart: every item of the table is a candidate
                candidates = [item for partition in self._items[schema.name].values() for item in partition.values()]
            else:
                value = expressions.equality_value(request["KeyConditionExpression"], hash_key, names, values)
                if value is None:
                    raise client_error("Query", "ValidationException", "Query key condition not supported")
                candidates = list(self._items[schema.name].get(_sort_value(value), {}).values())
            found = copy.deepcopy([item for item in candidates if hash_key in item and matches(item)])
        projected = schema.projected.get(index) if index else None
        if projected is not None:
            kept = projected | {schema.hash_key, schema.range_key, hash_key, range_key}
            found = [{name: value for name, value in item.items() if name in kept} for item in found]
        # Within a partition: by the range key, then (an index) by the table's key, as DynamoDB pages them.
        found.sort(key=lambda item: (_sort_value(item.get(range_key)) if range_key else "", schema.key_of(item)))
        if request.get("ScanIndexForward") is False:
            found.reverse()
        start = request.get("ExclusiveStartKey")
        if start is not None:
            start_key = schema.key_of(start)
            positions = [i for i, item in enumerate(found) if schema.key_of(item) == start_key]
            found = found[positions[0] + 1 :] if positions else found
        limit = request.get("Limit")
        page = found[:limit] if limit else found
        last = page[-1] if limit and len(found) > limit else None
        evaluated = len(page)
        if request.get("FilterExpression"):
            keep = expressions.condition(request["FilterExpression"], names, values)
            page = [item for item in page if keep(item)]
        answer: dict[str, Any] = {"Count": len(page), "ScannedCount": evaluated}
        select = request.get("Select", "ALL_ATTRIBUTES")
        if select != "COUNT":
            if select not in {"ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES"}:
                raise NotImplementedError(f"Query Select={select} is not simulated")
            answer["Items"] = [self._project(item, request) for item in page]
        if last is not None:
            keys = {name for name in (schema.hash_key, schema.range_key, hash_key, range_key) if name}
            answer["LastEvaluatedKey"] = {name: last[name] for name in keys if name in last}
        return answer

    # --- batches and transactions
    @_validated("BatchGetItem")
    def batch_get_item(self, **request: Any) -> dict[str, Any]:
        self.wire.call("BatchGetItem")
        responses: dict[str, list[Item]] = {}
        with self._lock:
            for table, spec in request["RequestItems"].items():
                schema = self._schema(table, "BatchGetItem")
                found = responses.setdefault(table, [])
                for key in spec["Keys"]:
                    item = self._get(table, self._key(schema, key, "BatchGetItem"))
                    if item is not None:
                        found.append(self._project(item, spec))
        return {"Responses": responses, "UnprocessedKeys": {}}

    @_validated("BatchWriteItem")
    def batch_write_item(self, **request: Any) -> dict[str, Any]:
        self.wire.call("BatchWriteItem")
        with self._lock:
            for table, writes in request["RequestItems"].items():
                for write in writes:
                    if "PutRequest" in write:
                        self._put({"TableName": table, **write["PutRequest"]}, "BatchWriteItem")
                    else:
                        self._delete({"TableName": table, **write["DeleteRequest"]}, "BatchWriteItem")
        return {"UnprocessedItems": {}}

    @_validated("TransactWriteItems")
    def transact_write_items(self, **request: Any) -> dict[str, Any]:
        self.wire.call("TransactWriteItems")
        actions = request["TransactItems"]
        with self._lock:
            reasons = [self._transact_check(action) for action in actions]
            if any(reason["Code"] != "None" for reason in reasons):
                raise client_error(
                    "TransactWriteItems",
                    "TransactionCanceledException",
                    "Transaction cancelled, please refer cancellation reasons for specific reasons",
                    CancellationReasons=reasons,
                )
            for action in actions:
                (kind, spec), = action.items()
                if kind == "Put":
                    self._put(spec, "TransactWriteItems")
                elif kind == "Update":
                    self._update(spec, "TransactWriteItems")
                elif kind == "Delete":
                    self._delete(spec, "TransactWriteItems")
        return {}

    def _transact_check(self, action: Mapping[str, Any]) -> dict[str, str]:
        (kind, spec), = action.items()
        if kind not in {"Put", "Update", "Delete", "ConditionCheck"}:
            raise NotImplementedError(f"TransactWriteItems action {kind} is not simulated")
        schema = self._schema(spec["TableName"], "TransactWriteItems")
        key = spec.get("Key") or schema.key_attributes(schema.hash_key, schema.range_key, spec["Item"])
        current = self._get(schema.name, self._key(schema, key, "TransactWriteItems"))
        if self._check("TransactWriteItems", current, spec):
            return {"Code": "None"}
        return {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}


def _returned(old: Item | None, request: Mapping[str, Any]) -> dict[str, Any]:
    returned = request.get("ReturnValues", "NONE")
    if returned == "ALL_OLD":
        return {"Attributes": copy.deepcopy(old)} if old else {}
    if returned != "NONE":
        raise NotImplementedError(f"ReturnValues={returned} is not simulated")
    return {}
