"""Long-poll holds, run after the resolver.

A route that wants to hold the request only records a ``Hold`` (a decision); the handler waits once
the resolver has returned, then answers from here, so routing stays short and the wait is plain I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response

from taskcast.api.deps import ApiDeps
from taskcast.api.problems import error_response, task_not_found
from taskcast.api.responses import accepted_response, status_response, with_preference_applied
from taskcast.api.waiting import hold
from taskcast.models import Task


@dataclass(frozen=True)
class Hold:
    task: Task
    seconds: float
    # "status": GET ?wait=N, done when the version changes; "create": Prefer: wait=N, done when finished.
    answer: Literal["status", "create"]

    @property
    def done(self) -> Callable[[Task], bool]:
        if self.answer == "status":
            return lambda task: task.version != self.task.version or task.terminal
        return lambda task: task.terminal


@dataclass
class RequestState:
    """Per-request scratch space shared by the handler and the route it resolved to."""

    hold: Hold | None = None


def finish_hold(request_hold: Hold, deps: ApiDeps) -> Response[Any]:
    task = hold(
        lambda: deps.store.get(request_hold.task.id),
        request_hold.done,
        request_hold.seconds,
        deps.settings.long_poll_interval_s,
        initial=request_hold.task,
        sleep=deps.sleep,
        clock=deps.clock,
    )
    if task is None:
        return error_response(task_not_found(request_hold.task.id))
    if request_hold.answer == "status":
        return status_response(task, deps.settings)
    if task.terminal:
        return with_preference_applied(status_response(task, deps.settings), request_hold.seconds)
    return accepted_response(task, deps.settings)
