"""Long-poll holds, run after the resolver.

A route that wants to hold the request only records a ``Hold`` (a decision); the handler waits once
the resolver has returned, then answers from here, so routing stays short and the wait is plain I/O.

A tenant holds at most ``long_polls_per_tenant`` requests at once (``taskcast.long_polls``): beyond it a
``GET ?wait=N`` answers ``429`` with ``Retry-After``, and a ``POST`` with ``Prefer: wait=N`` answers ``202``
at once, as without the preference (the task exists already; a 429 would invite a second one).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response

from taskcast.api.deps import ApiDeps
from taskcast.api.problems import ProblemError, error_response, task_not_found
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


def long_poll_limit_exceeded(limit: int, retry_after_s: int) -> ProblemError:
    return ProblemError(
        429,
        "long-poll-limit-exceeded",
        "Too many long-polls",
        f"This API key already holds {limit} long-polls; retry later, or subscribe over the WebSocket instead.",
        headers={"Retry-After": str(max(1, retry_after_s))},
        limit=limit,
    )


def finish_hold(request_hold: Hold, deps: ApiDeps) -> Response[Any]:
    settings = deps.settings
    tenant, lease_id = request_hold.task.tenant, uuid.uuid4().hex
    if not deps.long_polls.acquire(tenant, lease_id, request_hold.seconds, settings.long_polls_per_tenant):
        if request_hold.answer == "create":
            return accepted_response(request_hold.task, settings)
        return error_response(long_poll_limit_exceeded(settings.long_polls_per_tenant, settings.retry_after_s))
    try:
        return _answer_after_hold(request_hold, deps)
    finally:
        deps.long_polls.release(tenant, lease_id)


def _answer_after_hold(request_hold: Hold, deps: ApiDeps) -> Response[Any]:
    task = hold(
        lambda: deps.store.get(request_hold.task.id),
        request_hold.done,
        request_hold.seconds,
        deps.settings.long_poll_interval_s,
        initial=request_hold.task,
        max_interval_s=deps.settings.long_poll_max_interval_s,
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
