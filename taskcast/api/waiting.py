"""Long-poll and caching decisions: how long to hold a request, and the headers that tell a client
when to come back and when the task record goes away. Pure functions, plus one loop over injected
read/sleep/clock functions."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import TypeVar

from taskcast.limits import reread_delay

T = TypeVar("T")

# Leave this much of the Lambda invocation for answering after a hold.
ANSWER_MARGIN_S = 2.0

_WAIT_PREFERENCE = re.compile(r"^\s*wait\s*=\s*\"?([0-9]+(?:\.[0-9]+)?)\"?\s*$", re.IGNORECASE)


def clamp_wait(requested: float | None, maximum: float, remaining_s: float = math.inf) -> float:
    """Seconds to hold: ``min(requested, maximum)``, never negative, never past the invocation's end."""
    if requested is None or not math.isfinite(requested) or requested <= 0:
        return 0.0
    return max(0.0, min(requested, maximum, remaining_s - ANSWER_MARGIN_S))


def parse_prefer_wait(header_values: Iterable[str]) -> float | None:
    """The ``wait`` preference of RFC 7240 ``Prefer`` headers (``Prefer: respond-async, wait=10``), or None.

    Preferences are comma-separated; parameters after ``;`` are ignored. A malformed value is
    ignored, as RFC 7240 lets a server ignore any preference it does not understand.
    """
    for value in header_values:
        for preference in value.split(","):
            token = preference.split(";", 1)[0]
            match = _WAIT_PREFERENCE.match(token)
            if match:
                return float(match.group(1))
    return None


def format_seconds(seconds: float) -> str:
    """``5.0`` → ``"5"``, ``2.5`` → ``"2.5"`` (header values)."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def http_date(epoch_s: float) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), as ``Expires`` needs."""
    return formatdate(epoch_s, usegmt=True)


def hold(
    read: Callable[[], T | None],
    done: Callable[[T], bool],
    seconds: float,
    interval_s: float,
    *,
    initial: T,
    max_interval_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T | None:
    """Re-``read`` until ``done(value)`` or ``seconds`` pass; the last value read.

    The first re-read comes after ``interval_s``, each next one after twice the last gap, up to
    ``max_interval_s`` (None: every ``interval_s``). None means the value disappeared while waiting.
    """
    deadline = clock() + seconds
    current: T | None = initial
    reread = 0
    while current is not None and not done(current):
        left = deadline - clock()
        if left <= 0:
            break
        sleep(min(reread_delay(reread, interval_s, max_interval_s or interval_s), left))
        reread += 1
        current = read()
    return current
