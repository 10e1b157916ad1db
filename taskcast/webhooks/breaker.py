"""The circuit breaker of one webhook endpoint (a tenant + a callback URL origin): pure decisions.

- closed: jobs are attempted. Every failed attempt (timeout, connection error, 5xx) adds one to the
  consecutive failures; any answer that is not a failure (2xx, 4xx, 3xx) resets them.
- open: after ``threshold`` consecutive failures the endpoint is left alone for a cool-down that doubles
  with each opening in a row (``base_s``, 2 × ``base_s``, … up to ``max_s``). Jobs for it go back on
  the queue until the cool-down ends, unattempted: no attempt is counted, the receiver is not called.
- half-open: after the cool-down, one job (whoever claims the probe first) is attempted. A success
  closes the breaker; a failure opens it again at once, with the next, longer cool-down.

The state lives in the tasks table (``taskcast.store.Breakers``) so that every delivery invocation
sees it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from taskcast.webhooks.format import AttemptResult


@dataclass(frozen=True)
class BreakerPolicy:
    threshold: int = 5  # consecutive failed attempts that open the breaker
    base_s: float = 30.0  # the first cool-down
    max_s: float = 900.0  # the longest cool-down

    def cool_down(self, openings: int) -> float:
        """The cool-down of the ``openings``-th opening in a row (1-based)."""
        return float(min(self.max_s, self.base_s * 2 ** max(0, openings - 1)))


@dataclass(frozen=True)
class BreakerState:
    failures: int = 0  # consecutive failed attempts since the last success or opening
    open_until: float = 0.0  # epoch seconds
    openings: int = 0  # openings in a row without a success between them
    probe_until: float = 0.0  # a half-open probe is in flight until then

    @property
    def healthy(self) -> bool:
        return self.failures == 0 and self.openings == 0


@dataclass(frozen=True)
class Gate:
    state: Literal["closed", "open", "half-open"]
    wait_s: float = 0.0  # when open: until the next look


def gate(state: BreakerState, now: float) -> Gate:
    """Whether a job for the endpoint may be attempted now."""
    if state.open_until > now:
        return Gate("open", state.open_until - now)
    if state.openings > 0:
        if state.probe_until > now:
            return Gate("open", state.probe_until - now)  # another invocation is probing
        return Gate("half-open")
    return Gate("closed")


def is_endpoint_failure(result: AttemptResult) -> bool:
    """Failures that say the endpoint is down or overloaded (not a refusal of one message)."""
    return result.unreachable or (result.status_code is not None and result.status_code >= 500)


def after_failure(state: BreakerState, now: float, policy: BreakerPolicy) -> BreakerState | None:
    """The opened state when this failure (already counted in ``state.failures``) opens the breaker."""
    probing = state.openings > 0 and state.open_until <= now
    if state.failures < policy.threshold and not probing:
        return None
    openings = state.openings + 1
    return dataclasses.replace(
        state, failures=0, openings=openings, open_until=now + policy.cool_down(openings), probe_until=0.0
    )
