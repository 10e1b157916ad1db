"""A test-only fault hook: poison stream records that make the consumer raise, for the fault-injection suite.

Off unless ``TASKCAST_FAULT_POISON_PERCENT`` is set (never set it on AWS; the template does not). Then the
change ``(task id, version)`` is poison when ``is_poison(task_id, version, percent)`` holds (a stable hash,
so the suite knows which records it poisoned), and the consumer raises ``PoisonRecord`` the first
``TASKCAST_FAULT_POISON_FAILURES`` times (default 2) it handles that record in this process. The stream then
delivers the record again (bisecting the batch, holding back the task's later versions) until it passes:
the path a real transient poison record takes, with nothing lost.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import Counter

from streams.fanout import PoisonRecord

logger = logging.getLogger(__name__)
_failures: Counter[str] = Counter()
_lock = threading.Lock()


def is_poison(task_id: str, version: int, percent: float) -> bool:
    digest = hashlib.sha256(f"{task_id}:{version}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < percent * 100


def raise_if_poisoned(task_id: str, version: int, environ: dict[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    percent = float(env.get("TASKCAST_FAULT_POISON_PERCENT") or 0)
    if percent <= 0 or not is_poison(task_id, version, percent):
        return
    allowed = int(env.get("TASKCAST_FAULT_POISON_FAILURES") or 2)
    key = f"{task_id}:{version}"
    with _lock:
        if _failures[key] >= allowed:
            return
        _failures[key] += 1
    logger.warning("injected poison record %s", key)
    raise PoisonRecord(f"injected poison record {key} (TASKCAST_FAULT_POISON_PERCENT)")
