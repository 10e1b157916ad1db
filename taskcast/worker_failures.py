"""Turning a Lambda async on-failure destination record into the task's terminal error.

The worker runs with ``MaximumRetryAttempts: 0`` and an SQS on-failure destination: when it times
out, crashes or runs out of memory, Lambda sends an invocation record like

    {"version": "1.0", "timestamp": "...",
     "requestContext": {"requestId", "functionArn", "condition": "RetriesExhausted", "approximateInvokeCount"},
     "requestPayload": {"task_id": "..."},
     "responseContext": {"statusCode", "executedVersion", "functionError": "Unhandled"},
     "responsePayload": {"errorType"?, "errorMessage": "... Task timed out after 3.00 seconds"}}

and the task, still RUNNING (or PENDING), must end FAILED naming the cause.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskcast.models import Status, Task, problem, transition

TIMEOUT_MARKERS = ("task timed out", "sandbox.timedout")


class NotAnInvocationRecord(ValueError):
    pass


@dataclass(frozen=True)
class WorkerFailure:
    task_id: str
    condition: str
    error_type: str
    error_message: str

    @property
    def timed_out(self) -> bool:
        text = f"{self.error_type} {self.error_message}".lower()
        return any(marker in text for marker in TIMEOUT_MARKERS)


def parse_invocation_record(body: str) -> WorkerFailure:
    try:
        record = json.loads(body)
    except (TypeError, json.JSONDecodeError) as error:
        raise NotAnInvocationRecord(f"not JSON: {error}") from None
    if not isinstance(record, dict):
        raise NotAnInvocationRecord("not a JSON object")
    payload = record.get("requestPayload")
    task_id = payload.get("task_id") if isinstance(payload, dict) else None
    if not isinstance(task_id, str) or not task_id:
        raise NotAnInvocationRecord("requestPayload.task_id is missing")
    response = record.get("responsePayload")
    response = response if isinstance(response, dict) else {"errorMessage": str(response or "")}
    request_context = record.get("requestContext")
    context: dict[str, Any] = request_context if isinstance(request_context, dict) else {}
    return WorkerFailure(
        task_id=task_id,
        condition=str(context.get("condition", "")),
        error_type=str(response.get("errorType", "")),
        error_message=str(response.get("errorMessage", "")),
    )


def failure_error(failure: WorkerFailure) -> dict[str, Any]:
    if failure.timed_out:
        return problem("timeout", "The worker timed out", 504, failure.error_message or "the worker ran out of time")
    if failure.condition == "EventAgeExceeded":
        detail = "the worker was never started: the invocation waited too long in Lambda's queue"
    else:
        detail = failure.error_message or "the worker stopped without an answer"
    return problem("worker-crashed", "The worker stopped", 502, detail)


def fail_unfinished(failure: WorkerFailure) -> Callable[[Task], Task | None]:
    """The change marking a still-unfinished task FAILED; a finished task is left alone."""

    def change(task: Task) -> Task | None:
        if task.terminal:
            return None
        return transition(task, Status.FAILED, error=failure_error(failure), message=None)

    return change
