"""Heartbeat deadlines of external jobs: the check message and the decision taken on it (pure functions).

An external task's worker must report (heartbeat, progress) at least every ``heartbeat_s`` seconds, counted
from the hand-off. Nothing scans for silent workers: the hand-off sends one check message, delayed until the
first deadline, to the worker failure queue. When it arrives, the task is

- already over (or gone): the check is dropped, the chain ends;
- past its deadline (last beat + ``heartbeat_s``): it ends ``FAILED`` with ``/heartbeat-timeout``;
- still within it (the worker beat meanwhile): the check is sent on, delayed until the new deadline.

So each task has one check in flight at a time, however often its worker beats, and a silent worker's task
fails within the SQS delay's precision and the queue's polling after its deadline. SQS delays a message at
most 15 minutes: a later deadline is reached in hops.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from taskcast.models import Status, Task, problem, transition

CHECK_KIND = "heartbeat-check"
MAX_SQS_DELAY_S = 900


@dataclass(frozen=True)
class HeartbeatCheck:
    task_id: str
    not_before: float  # epoch seconds: the deadline this check was sent for

    def to_json(self) -> str:
        return json.dumps({"kind": CHECK_KIND, **asdict(self)})


class NotACheck(ValueError):
    pass


def is_check(body: str) -> bool:
    """Whether a message of the worker failure queue is a heartbeat check (the rest are invocation records)."""
    try:
        message = json.loads(body)
    except (TypeError, json.JSONDecodeError):
        return False
    return isinstance(message, dict) and message.get("kind") == CHECK_KIND


def parse_check(body: str) -> HeartbeatCheck:
    try:
        message = json.loads(body)
        return HeartbeatCheck(str(message["task_id"]), float(message["not_before"]))
    except (TypeError, KeyError, ValueError, json.JSONDecodeError):
        raise NotACheck("a heartbeat check without task_id or not_before") from None


def delay_seconds(not_before: float, now: float) -> int:
    """The SQS ``DelaySeconds`` that brings a check back at ``not_before``: rounded up, so never early."""
    return max(0, min(MAX_SQS_DELAY_S, math.ceil(not_before - now)))


@dataclass(frozen=True)
class Drop:
    """The task is over or gone: nothing more to check."""


@dataclass(frozen=True)
class TimedOut:
    silent_s: float


@dataclass(frozen=True)
class CheckAgain:
    not_before: float


Verdict = Drop | TimedOut | CheckAgain


def deadline(task: Task, last_beat: float | None, handed_off: float) -> float:
    return (last_beat if last_beat is not None else handed_off) + task.heartbeat_s


def verdict(task: Task | None, last_beat: float | None, check: HeartbeatCheck, now: float) -> Verdict:
    """What a check finds. Without a recorded beat, the check's own deadline stands (the hand-off beat is lost)."""
    if task is None or task.terminal or task.heartbeat_s <= 0:
        return Drop()
    due = deadline(task, last_beat, check.not_before - task.heartbeat_s)
    if now >= due:
        return TimedOut(silent_s=now - (due - task.heartbeat_s))
    return CheckAgain(not_before=due)


def timeout_error(heartbeat_s: int, silent_s: float) -> dict[str, Any]:
    return problem(
        "heartbeat-timeout",
        "The external worker stopped reporting",
        504,
        f"No heartbeat or progress for {silent_s:.0f} s; this job's workers must report every {heartbeat_s} s.",
        heartbeat_s=heartbeat_s,
    )


def time_out(silent_s: float) -> Callable[[Task], Task | None]:
    """The change ending a still unfinished task ``FAILED`` with ``/heartbeat-timeout``."""

    def change(task: Task) -> Task | None:
        if task.terminal:
            return None  # it ended meanwhile: that outcome stands
        return transition(task, Status.FAILED, error=timeout_error(task.heartbeat_s, silent_s), message=None)

    return change
