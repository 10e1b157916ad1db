"""Poison stream records for the fault-injection suite, added by wrapping the consumer's handler.

A change ``(task id, version)`` is poison when ``is_poison(task_id, version, percent)`` holds (a stable
hash, so the suite knows which records it poisoned). The wrapped handler fails such a record the first
``failures`` times it sees it, as a consumer that raised on it would answer: the records before it are
handled, and the batch reports it (and so, on a stream, everything after it) as failed. The stream then
delivers it again (bisecting, holding back the task's later versions) until it passes: the path a real
transient poison record takes, with nothing lost.

The count is kept in a ledger folder shared by every process that runs the consumer: with a
``ParallelizationFactor`` above 1 several environments run it, and a count per process would fail a
record up to ``failures`` times in each, past the mapping's ``MaximumRetryAttempts``.

``poison_site/sitecustomize.py`` installs the wrapper in the process that runs the consumer.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def is_poison(task_id: str, version: int, percent: float) -> bool:
    digest = hashlib.sha256(f"{task_id}:{version}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < percent * 100


def change_of(record: dict[str, Any]) -> tuple[str, int] | None:
    """``(task id, version)`` of a task-state stream record, or None for any other record."""
    body = record.get("dynamodb") or {}
    keys, image = body.get("Keys") or {}, body.get("NewImage") or {}
    if (keys.get("sk") or {}).get("S") != "STATE" or "N" not in (image.get("version") or {}):
        return None
    return keys["pk"]["S"], int(image["version"]["N"])


class Poisoner:
    def __init__(self, percent: float, failures: int, ledger: Path) -> None:
        self.percent = percent
        self.failures = failures
        self.ledger = ledger

    def fails(self, record: dict[str, Any]) -> str | None:
        """The record's key when it is poison and has not failed often enough yet, in any process."""
        change = change_of(record)
        if change is None or not is_poison(*change, self.percent):
            return None
        key = f"{change[0]}:{change[1]}"
        for failure in range(1, self.failures + 1):
            # Creating the file is the atomic claim of this failure across processes.
            try:
                os.close(os.open(self.ledger / f"{key}.{failure}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            return key
        return None

    def wrap(self, handler: Handler) -> Handler:
        def poisoned(event: dict[str, Any], context: Any) -> dict[str, Any]:
            records = list(event.get("Records") or [])
            for index, record in enumerate(records):
                key = self.fails(record)
                if key is None:
                    continue
                logger.warning("injected poison record %s", key)
                answer = handler({**event, "Records": records[:index]}, context) if index else {}
                failures = list(answer.get("batchItemFailures") or [])
                failures.append({"itemIdentifier": str(record["dynamodb"].get("SequenceNumber", ""))})
                return {"batchItemFailures": failures}
            return handler(event, context)

        return poisoned
