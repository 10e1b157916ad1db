"""Latencies drawn like a network call's: lognormal around a median, with a given 99th percentile."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

_Z99 = 2.3263  # the standard normal's 99th percentile


@dataclass(frozen=True)
class Latency:
    median_s: float
    p99_s: float

    @property
    def sigma(self) -> float:
        return math.log(self.p99_s / self.median_s) / _Z99 if self.p99_s > self.median_s > 0 else 0.0

    def draw(self, rand: random.Random) -> float:
        if self.median_s <= 0:
            return 0.0
        return self.median_s * math.exp(self.sigma * rand.gauss(0.0, 1.0))

    @classmethod
    def parse(cls, text: str) -> Latency:
        """``"5"`` (ms, a fixed delay) or ``"5/12"`` (median/p99 in ms)."""
        median, _, p99 = text.partition("/")
        return cls(float(median) / 1000, float(p99 or median) / 1000)


class Wire:
    """A fake service's network: every call sleeps a drawn latency (the GIL is released meanwhile, as
    it is while a real client waits on its socket) and is counted by operation."""

    def __init__(self, latency: Latency, seed: int | None = None) -> None:
        self.latency = latency
        self.calls: Counter[str] = Counter()
        # How much later than asked the waits ended, summed: the host's scheduling and the GIL, not AWS.
        self.overshoot_s = 0.0
        self._lock = threading.Lock()
        self._rand = random.Random(seed)

    def call(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1
            delay = self.latency.draw(self._rand)
        if delay > 0:
            started = time.monotonic()
            time.sleep(delay)
            late = time.monotonic() - started - delay
            with self._lock:
                self.overshoot_s += late
