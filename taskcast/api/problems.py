"""RFC 9457 problem responses and the exception handlers that turn every failure into one."""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from taskcast.api.routing import RouteTable
from taskcast.models import problem

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger(__name__)


class ProblemError(Exception):
    """Raised anywhere in a route to answer with a problem."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.body = problem(kind, title, status, detail, **extra)
        self.status = status
        self.headers = headers or {}


def error_response(error: ProblemError) -> Response[Any]:
    return Response(
        status_code=error.status, content_type=PROBLEM_JSON, body=json.dumps(error.body), headers=error.headers
    )


def problem_response(
    status: int, kind: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=json.dumps(problem(kind, title, status, detail, **extra)),
        headers=headers,
    )


def unauthorized() -> ProblemError:
    return ProblemError(
        401,
        "unauthorized",
        "Unauthorized",
        "The request reached the API without an authenticated tenant; send Authorization: Bearer <api key>.",
    )


def task_not_found(task_id: str) -> ProblemError:
    # The same answer for an unknown id and another tenant's id: existence never leaks.
    return ProblemError(404, "task-not-found", "Task not found", f"There is no task {task_id!r}.")


def describe_validation(errors: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """Powertools' validation errors → a one-line detail and a list without echoed input."""
    listed = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        listed.append({"location": location, "message": error.get("msg", "invalid")})
    if any(error.get("type") == "json_invalid" for error in errors):
        return "The request body is not valid JSON.", listed
    detail = "; ".join(f"{item['location']}: {item['message']}" for item in listed) or "The request is invalid."
    return detail, listed


def register_problem_handlers(app: APIGatewayRestResolver, routes: RouteTable) -> None:
    @app.exception_handler(ProblemError)
    def on_problem(error: ProblemError) -> Response[Any]:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    def on_validation(error: RequestValidationError) -> Response[Any]:
        detail, listed = describe_validation(list(error.errors()))
        return problem_response(400, "invalid-request", "Invalid request", detail, errors=listed)

    @app.exception_handler(UnicodeDecodeError)
    def on_undecodable(error: UnicodeDecodeError) -> Response[Any]:
        # A body that is not UTF-8 fails while Powertools decodes it, before any validation runs.
        return problem_response(400, "invalid-request", "Invalid request", "The request body is not valid UTF-8 JSON.")

    @app.exception_handler(IdempotencyValidationError)
    def on_key_reuse(error: IdempotencyValidationError) -> Response[Any]:
        return problem_response(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused with another body",
            "This Idempotency-Key was already used with a different request body; use a new key for a new task.",
        )

    @app.exception_handler(IdempotencyAlreadyInProgressError)
    def on_key_in_progress(error: IdempotencyAlreadyInProgressError) -> Response[Any]:
        return problem_response(
            409,
            "idempotency-key-in-progress",
            "Request in progress",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers={"Retry-After": "1"},
        )

    @app.not_found
    def on_not_found(error: NotFoundError) -> Response[Any]:
        event = app.current_event
        allowed = routes.allowed_methods(event.path)
        if allowed:
            return problem_response(
                405,
                "method-not-allowed",
                "Method not allowed",
                f"{event.http_method} is not allowed on {event.path}; use {', '.join(allowed)}.",
                headers={"Allow": ", ".join(allowed)},
            )
        return problem_response(404, "not-found", "Not found", f"There is no resource at {event.path}.")

    @app.exception_handler(Exception)
    def on_unexpected(error: Exception) -> Response[Any]:
        logger.exception("unexpected error while handling a request")
        return problem_response(500, "internal-error", "Internal error", "The request failed on the server's side.")
