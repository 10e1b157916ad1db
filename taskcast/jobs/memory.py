"""How much memory a job needed: the peak of Python's allocations while it ran (``tracemalloc``).

tracemalloc is process-wide: tracing starts with the first measured job and stops with the last, and
jobs running at the same time in one process see each other's allocations (Lambda runs one at a time).
"""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_lock = threading.Lock()
_state = {"users": 0, "started_here": False}


@dataclass
class PeakMemory:
    bytes: int = 0


@contextmanager
def traced_peak() -> Iterator[PeakMemory]:
    """Measures the block: ``peak.bytes`` is the highest traced memory above what was in use at its start."""
    with _lock:
        if _state["users"] == 0 and not tracemalloc.is_tracing():
            tracemalloc.start()
            _state["started_here"] = True
        _state["users"] += 1
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    peak = PeakMemory()
    try:
        yield peak
    finally:
        with _lock:
            peak.bytes = max(0, tracemalloc.get_traced_memory()[1] - baseline)
            _state["users"] -= 1
            if _state["users"] == 0 and _state["started_here"]:
                tracemalloc.stop()
                _state["started_here"] = False
