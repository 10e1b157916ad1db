"""Per-tenant limits on the shared path: the decisions, as pure functions over counts and settings.

The counts come from conditional counters repaired by bounded recounts (``taskcast.counters``) or from
bounded DynamoDB Queries (``Select=COUNT`` with ``Limit``, never a Scan), over items that expire on their
own (``SubscriptionStore``, ``taskcast.long_polls``), so a lost ``$disconnect`` or a killed function cannot
hold a slot forever. Every limit and its default is listed in ``docs/operations.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from taskcast.settings import Settings


@dataclass(frozen=True)
class LimitExceeded:
    """Why a request was refused: a WebSocket ``error`` frame's ``code`` (it ends in ``limit_exceeded``)."""

    code: str
    message: str


def within(count: int, limit: int) -> bool:
    """True while ``count`` items (the new one included) stay within ``limit``; a limit below 1 refuses all."""
    return count <= limit


@dataclass(frozen=True)
class SubscriptionLimits:
    """The WebSocket limits: subscriptions per connection, subscribers per task, connections per tenant."""

    per_connection: int = 100
    per_task: int = 2000
    connections_per_tenant: int = 5000

    @classmethod
    def from_settings(cls, settings: Settings) -> SubscriptionLimits:
        return cls(
            per_connection=settings.subscriptions_per_connection,
            per_task=settings.subscribers_per_task,
            connections_per_tenant=settings.connections_per_tenant,
        )

    def connection_refusal(self) -> LimitExceeded:
        """The answer when the connection already follows ``per_connection`` tasks."""
        return LimitExceeded(
            "subscription_limit_exceeded",
            f"A connection may subscribe to at most {self.per_connection} tasks; unsubscribe from one first.",
        )

    def task_refusal(self) -> LimitExceeded:
        """The answer when the task already has ``per_task`` subscribers."""
        return LimitExceeded(
            "subscriber_limit_exceeded",
            f"A task may have at most {self.per_task} subscribers; poll GET /tasks/{{id}} instead.",
        )


def reread_delay(reread: int, first_s: float, max_s: float) -> float:
    """The wait before a long-poll's ``reread``-th re-read (0-based): ``first_s`` doubling up to ``max_s``.

    A change soon after the hold starts is seen quickly; a task that stays quiet costs a few reads a second
    at most, not ten.
    """
    if reread >= 64:  # 2**64 × any sensible first_s is past any cap; avoid float overflow
        return max(first_s, max_s)
    return max(first_s, min(max_s, first_s * float(2**reread)))


def rereads_of_hold(seconds: float, first_s: float, max_s: float) -> int:
    """How many reads a hold of ``seconds`` makes when the task never changes (for docs and tests)."""
    reads, waited = 0, 0.0
    while waited < seconds:
        waited += min(reread_delay(reads, first_s, max_s), seconds - waited)
        reads += 1
    return reads


def fanout_worst_case_s(subscribers: int, workers: int, post_s: float, budget_s: float) -> float:
    """The longest one change's fan-out holds its shard: its posts run ``workers`` at a time, and once
    ``budget_s`` has passed no new post starts, so at most the budget plus the posts already under way."""
    rounds = math.ceil(max(0, subscribers) / max(1, workers))
    return min(rounds * post_s, budget_s + post_s)


def retry_after_header(seconds: int) -> dict[str, Any]:
    return {"Retry-After": str(max(1, int(seconds)))}
