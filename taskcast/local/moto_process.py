"""moto's server as a child process of the local stack: ``python -m taskcast.local.moto_process``.

A separate process gives moto its own interpreter lock, so the handlers and moto use both cores.
It prints ``MOTO_READY <port>`` on stdout once it listens and exits when its stdin closes (the stack
died), so no orphan keeps a port.

Four local fixes to moto's behaviour, applied here only:
- DynamoDB and DynamoDB Streams calls are serialized with one lock: moto's models are not
  thread-safe, and a transaction restores a backup of the table when it fails;
- that backup copies only what the transaction can change (the tables' item maps, the items it
  names and the stream's record list) instead of a deep copy of every table it touches, which made
  each task write slower in proportion to everything written before it;
- a stream iterator asked ``AT_SEQUENCE_NUMBER`` / ``AFTER_SEQUENCE_NUMBER`` gets the number as an
  integer (moto keeps the string and fails), so a restarted poller can resume where it stopped;
- shard iterators older than the newest few thousand are forgotten, as AWS expires them after 15
  minutes: a poller asks for one every few tens of milliseconds and moto otherwise keeps them all.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

KEEP_SHARD_ITERATORS = 5000
_SERIALIZED_TARGETS = ("DynamoDB_20120810", "DynamoDBStreams_20120810")


class SerializedDynamoDB:
    """WSGI middleware: one DynamoDB (or Streams) request at a time, everything else in parallel."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(_SERIALIZED_TARGETS):
            return self.app(environ, start_response)
        with self.lock:
            # Materialize the body inside the lock: moto builds it lazily from live models.
            return list(self.app(environ, start_response))


def patch_moto_streams() -> None:
    from moto.dynamodbstreams import models

    original = models.DynamoDBStreamsBackend.get_shard_iterator
    if getattr(original, "_taskcast_patched", False):
        return

    def get_shard_iterator(self: Any, arn: str, shard_id: str, shard_iterator_type: str, sequence_number: Any = None):
        number = int(sequence_number) if sequence_number not in (None, "") else None
        iterator = original(self, arn, shard_id, shard_iterator_type, number)
        _forget_old_iterators(self.shard_iterators)
        return iterator

    original_get_records = models.DynamoDBStreamsBackend.get_records

    def get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        answer = original_get_records(self, iterator_arn, limit)
        _forget_old_iterators(self.shard_iterators)
        return answer

    get_shard_iterator._taskcast_patched = True  # type: ignore[attr-defined]
    models.DynamoDBStreamsBackend.get_shard_iterator = get_shard_iterator  # type: ignore[method-assign]
    models.DynamoDBStreamsBackend.get_records = get_records  # type: ignore[method-assign]


_transaction_keys = threading.local()


class _TransactionBackupCopy:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: a deep copy of a table
    during a transaction becomes a cheap backup; everything else is copied as before."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        keys = getattr(_transaction_keys, "by_table", None)
        if keys is not None and isinstance(value, Table):
            return _table_backup(value, keys.get(value.name, []), self._real)
        return self._real.deepcopy(value, memo)


def _table_backup(table: Any, keys: list[tuple[Any, Any]], real_copy: Any) -> Any:
    """A table that shares the untouched items with ``table`` and owns copies of the ones the
    transaction names. Dict copies keep their stored hashes: moto's key hashing is slow."""
    backup = real_copy.copy(table)
    backup.items = table.items.copy()
    for hash_key, range_key in keys:
        if table.has_range_key:
            inner = dict(table.items.get(hash_key, {}))
            if range_key in inner:
                inner[range_key] = real_copy.deepcopy(inner[range_key])
            backup.items[hash_key] = inner
        elif table.items.get(hash_key) is not None:
            backup.items[hash_key] = real_copy.deepcopy(table.items[hash_key])
    if table.stream_shard is not None:
        backup.stream_shard = real_copy.copy(table.stream_shard)
        backup.stream_shard.items = list(table.stream_shard.items)
        backup.stream_shard.table = backup
    return backup


def _touched_keys(backend: Any, transact_items: list[dict[str, Any]]) -> dict[str, list[tuple[Any, Any]]]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    keys: dict[str, list[tuple[Any, Any]]] = {}
    for entry in transact_items:
        for operation, arguments in entry.items():
            table = backend.tables.get(arguments.get("TableName"))
            if table is None:
                continue
            key = arguments["Item"] if operation == "Put" else arguments.get("Key", {})
            if table.hash_key_attr not in key:
                continue
            range_value = key.get(table.range_key_attr) if table.range_key_attr else None
            keys.setdefault(table.name, []).append(
                (DynamoType(key[table.hash_key_attr]), DynamoType(range_value) if range_value else None)
            )
    return keys


def patch_moto_transactions() -> None:
    import copy

    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items
    if getattr(original, "_taskcast_patched", False):
        return

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        try:
            _transaction_keys.by_table = _touched_keys(self, transact_items)
        except Exception:  # noqa: BLE001 - an odd request: let moto judge it with its own full backup
            _transaction_keys.by_table = None
        try:
            return original(self, transact_items)
        finally:
            _transaction_keys.by_table = None

    transact_write_items._taskcast_patched = True  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    models.copy = _TransactionBackupCopy(copy)  # type: ignore[attr-defined]


def patch_moto_queries() -> None:
    """A Query on a table's own key reads that key's items only.

    moto answers every Query by listing and sorting all the items of the table, so each subscriber
    lookup, history read and ``$disconnect`` cost time in proportion to the whole table: with ten
    thousand items a Query took tens of milliseconds, all of it under the DynamoDB lock. Index
    queries keep moto's way (an index has no partition map to read from).
    """
    from moto.dynamodb.models.table import Table

    original = Table.query
    if getattr(original, "_taskcast_patched", False):
        return

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name or hash_key is None:
            return original(self, hash_key, *args, **kwargs)
        partition = self.items.get(hash_key)
        if partition is None:
            items: list[Any] = []
        elif self.range_key_attr is not None:
            items = list(partition.values())
        else:
            items = [partition]
        # Shadow all_items for this one call; DynamoDB calls are serialized, so nothing else sees it.
        self.all_items = lambda: items
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    query._taskcast_patched = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]


def _forget_old_iterators(iterators: dict[str, Any]) -> None:
    excess = len(iterators) - KEEP_SHARD_ITERATORS
    if excess > KEEP_SHARD_ITERATORS // 10:  # prune in chunks, not on every call
        for key in list(iterators)[:excess]:
            iterators.pop(key, None)


def serve(host: str, port: int, on_ready: Callable[[int], None]) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    patch_moto_streams()
    patch_moto_transactions()
    patch_moto_queries()
    app = SerializedDynamoDB(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    on_ready(server.server_address[1])
    server.serve_forever()


def _exit_when_stdin_closes() -> None:
    sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
    import os

    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server for the taskcast local stack")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    import logging
    import signal

    # Ctrl-C reaches the whole process group: the stack stops first and then closes our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    threading.Thread(target=_exit_when_stdin_closes, name="stdin-watch", daemon=True).start()

    def ready(port: int) -> None:
        print(f"MOTO_READY {port}", flush=True)

    serve(args.host, args.port, ready)


if __name__ == "__main__":
    main()
