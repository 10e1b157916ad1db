"""The task routes: create, status (with long-poll), result, history, deliveries, cancel."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from taskcast.api.creating import create_task
from taskcast.api.deps import ApiDeps
from taskcast.api.holds import Hold, RequestState
from taskcast.api.models import CreateTaskRequest, DeliveryEntry, HistoryEntry, Problem, TaskMonitor
from taskcast.api.problems import ProblemError, task_not_found, unauthorized
from taskcast.api.request_info import header_values, tenant_of
from taskcast.api.responses import JSON, accepted_response, status_response, with_preference_applied
from taskcast.api.routing import RouteTable
from taskcast.api.waiting import clamp_wait, parse_prefer_wait
from taskcast.models import InvalidTransition, Status, Task, problem, transition
from taskcast.presign import presign_get

TAGS = ["tasks"]


def _content(model: Any, content_type: str = JSON) -> dict[str, Any]:
    return {content_type: {"model": model}}


PROBLEM = _content(Problem, "application/problem+json")
MONITOR = _content(TaskMonitor)
NOT_FOUND = {"description": "No such task for this tenant (another tenant's task answers the same)", "content": PROBLEM}


def cancel(task: Task) -> Task:
    """PENDING/RUNNING → CANCELLED; raises ``InvalidTransition`` for a finished task."""
    error = problem("cancelled", "Task cancelled", 409, "The task was cancelled by its owner.")
    return transition(task, Status.CANCELLED, error=error, message=None)


def register_task_routes(app: APIGatewayRestResolver, routes: RouteTable) -> None:
    def deps() -> ApiDeps:
        return cast(ApiDeps, app.context["deps"])

    def tenant() -> str:
        found = tenant_of(app.current_event.raw_event)
        if found is None:
            raise unauthorized()
        return found

    def owned_task(task_id: str) -> Task:
        task = deps().store.get_for_tenant(task_id, tenant())
        if task is None:
            raise task_not_found(task_id)
        return task

    def remaining_s() -> float:
        context = app.lambda_context
        if hasattr(context, "get_remaining_time_in_millis"):
            return context.get_remaining_time_in_millis() / 1000
        return math.inf

    def hold_for(request_hold: Hold) -> Response[Any]:
        state: RequestState = app.context["state"]
        state.hold = request_hold
        return Response(status_code=204)  # replaced by the handler once the hold ends

    @routes.route(
        "/tasks",
        "POST",
        summary="Start a task",
        description=(
            "Accepts the task at once: 202, Location and Retry-After. Optional headers: `Idempotency-Key` "
            "(same key and body: the same task again; another body: 422) and `Prefer: wait=N` (RFC 7240: hold "
            "up to min(N, 25) s; if the task finishes in time, answer as GET /tasks/{id} would, plus "
            "Preference-Applied)."
        ),
        tags=TAGS,
        responses={
            202: {"description": "Accepted; the task monitor", "content": MONITOR},
            200: {"description": "Finished within Prefer: wait (FAILED or CANCELLED)", "content": MONITOR},
            303: {"description": "Succeeded within Prefer: wait; see /tasks/{id}/result", "content": MONITOR},
            400: {"description": "Bad JSON, unknown job, invalid input or refused callback URL", "content": PROBLEM},
            413: {"description": "Body over the inline limit: use POST /uploads", "content": PROBLEM},
            422: {"description": "Idempotency-Key reused with another body", "content": PROBLEM},
            503: {"description": "The worker could not be started", "content": PROBLEM},
        },
    )
    def create(request: CreateTaskRequest) -> Response[Any]:
        event = app.current_event.raw_event
        keys = header_values(event, "Idempotency-Key")
        task = create_task(tenant(), request, keys[0] if keys else None, deps(), app.lambda_context)
        settings = deps().settings
        preferred = parse_prefer_wait(header_values(event, "Prefer"))
        if preferred is None:
            return accepted_response(task, settings)
        seconds = clamp_wait(preferred, settings.long_poll_max_s, remaining_s())
        if task.terminal:
            return with_preference_applied(status_response(task, settings), seconds)
        if seconds <= 0:
            return accepted_response(task, settings)
        return hold_for(Hold(task=task, seconds=seconds, answer="create"))

    @routes.route(
        "/tasks/<task_id>",
        "GET",
        summary="Task status (polling fallback, long-poll with ?wait=N)",
        description=(
            "200 with the monitor and Retry-After while PENDING or RUNNING; 303 to the result once SUCCEEDED; "
            "200 with `error` once FAILED or CANCELLED. `?wait=N` holds until the version changes or min(N, 25) s "
            "pass; a finished task answers at once. A tenant holds at most 20 long-polls at once (a setting): "
            "beyond that `?wait` answers 429 with Retry-After."
        ),
        tags=TAGS,
        responses={
            200: {"description": "The task monitor", "content": MONITOR},
            303: {"description": "Succeeded: see Location", "content": MONITOR},
            404: NOT_FOUND,
            429: {"description": "Too many long-polls held by this API key; see Retry-After", "content": PROBLEM},
        },
    )
    def get_task(
        task_id: str,
        wait: Annotated[float | None, Query(ge=0, description="Seconds to hold for a change (at most 25)")] = None,
    ) -> Response[Any]:
        task = owned_task(task_id)
        settings = deps().settings
        seconds = clamp_wait(wait, settings.long_poll_max_s, remaining_s())
        if seconds > 0 and not task.terminal:
            return hold_for(Hold(task=task, seconds=seconds, answer="status"))
        return status_response(task, settings)

    @routes.route(
        "/tasks/<task_id>/result",
        "GET",
        summary="The result of a succeeded task",
        description=(
            "Answers the job's result as it returned it: any JSON value. A result over the inline limit answers "
            "303 to a short-lived presigned S3 URL serving the same JSON document (follow it without the "
            "Authorization header). 409 until the task succeeded; a failed or cancelled task's 409 carries its error."
        ),
        tags=TAGS,
        responses={
            200: {"description": "The job's result (any JSON value)", "content": {JSON: {"schema": {}}}},
            303: {"description": "A large result: Location is a presigned S3 URL, valid a few minutes"},
            404: NOT_FOUND,
            409: {
                "description": "Not finished, or it failed / was cancelled (the problem carries its error)",
                "content": PROBLEM,
            },
        },
    )
    def get_result(task_id: str) -> Response[Any]:
        task = owned_task(task_id)
        if task.status is Status.SUCCEEDED and task.result_ref:
            settings = deps().settings
            url = presign_get(deps().s3, settings.results_bucket, task.result_ref, settings.result_url_ttl_s)
            return Response(status_code=303, headers={"Location": url, "Cache-Control": "no-store"})
        if task.status is Status.SUCCEEDED:
            # Serialized here: Powertools would pass a bare string result through unquoted.
            return Response(status_code=200, content_type=JSON, body=json.dumps(task.result))
        if task.terminal:
            raise ProblemError(
                409,
                "task-not-succeeded",
                "The task has no result",
                f"The task ended {task.status}; see its error.",
                task_status=str(task.status),
                error=task.error,
            )
        raise ProblemError(
            409,
            "task-not-finished",
            "The task has not finished",
            f"The task is {task.status}; poll /tasks/{task.id} or subscribe for its end.",
            headers={"Retry-After": str(deps().settings.retry_after_s)},
            task_status=str(task.status),
        )

    @routes.route(
        "/tasks/<task_id>/events",
        "GET",
        summary="The task's status history, oldest first",
        tags=TAGS,
        responses={200: {"description": "History entries", "content": _content(list[HistoryEntry])}, 404: NOT_FOUND},
    )
    def get_events(task_id: str) -> Response[Any]:
        task = owned_task(task_id)
        return Response(status_code=200, content_type=JSON, body=deps().store.history(task.id))

    @routes.route(
        "/tasks/<task_id>/deliveries",
        "GET",
        summary="The task's webhook delivery attempts, oldest first",
        tags=TAGS,
        responses={
            200: {"description": "Delivery attempts", "content": _content(list[DeliveryEntry])},
            404: NOT_FOUND,
        },
    )
    def get_deliveries(task_id: str) -> Response[Any]:
        task = owned_task(task_id)
        return Response(status_code=200, content_type=JSON, body=deps().deliveries.list(task.id))

    @routes.route(
        "/tasks/<task_id>",
        "DELETE",
        summary="Cancel a task",
        description="Cancels a PENDING or RUNNING task (202 with the monitor); a finished task answers 409.",
        tags=TAGS,
        responses={
            202: {"description": "Cancelled; the task monitor", "content": MONITOR},
            404: NOT_FOUND,
            409: {"description": "The task had already finished", "content": PROBLEM},
        },
    )
    def cancel_task(task_id: str) -> Response[Any]:
        owned_task(task_id)
        try:
            task = deps().store.update(task_id, cancel)
        except InvalidTransition as error:
            raise ProblemError(
                409,
                "task-finished",
                "The task has already finished",
                f"The task ended {error.current} before it could be cancelled.",
                task_status=str(error.current),
            ) from None
        if task is None:
            raise task_not_found(task_id)
        return accepted_response(task, deps().settings)
