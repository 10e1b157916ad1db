"""``GET /openapi.json``: the description Powertools generates from the routes, adjusted to what the
API really answers (its request validation errors are 400 problems here, not 422), with the registered
jobs and their input schemas (``job_schemas.py``)."""

from __future__ import annotations

import json
from typing import Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

from taskcast.api.deps import ApiDeps
from taskcast.api.job_schemas import with_jobs
from taskcast.api.responses import JSON
from taskcast.api.routing import RouteTable

TITLE = "taskcast"
VERSION = "1.0.0"
DESCRIPTION = (
    "Asynchronous Request-Reply: a task is accepted at once (202 + Location), runs in the background, "
    "and its status can be polled here (with long-poll) or received as pushes over the WebSocket API "
    "and signed webhooks. Errors are RFC 9457 problems (application/problem+json)."
)
_POWERTOOLS_VALIDATION_REF = "#/components/schemas/HTTPValidationError"


def as_problem_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace Powertools' generated 422 validation answers by the 400 problem the API really sends."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            generated = responses.get("422", {}).get("content", {}).get(JSON, {}).get("schema", {})
            if generated.get("$ref") == _POWERTOOLS_VALIDATION_REF:
                del responses["422"]
                responses.setdefault(
                    "400",
                    {
                        "description": "Invalid request (body, parameters or JSON)",
                        "content": {"application/problem+json": {"schema": problem_ref}},
                    },
                )
    if "HTTPValidationError" not in json.dumps(schema.get("paths", {})):
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        # Powertools adds it for response validation (off here) and it names the ValidationError just removed.
        if "ResponseValidationError" not in json.dumps(schema.get("paths", {})):
            components.pop("ResponseValidationError", None)
    return schema


UNAUTHENTICATED_PREFIX = "/task-tokens/"


def with_gateway_answers(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the gateway's own 401 and 403 problems (its authorizer answers them) to every authorized operation."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    gateway_answers = {
        "401": "No Authorization header or no bearer key (answered by the gateway's authorizer)",
        "403": "The API key is not valid (answered by the gateway's authorizer)",
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if path.startswith(UNAUTHENTICATED_PREFIX):
                operation["security"] = []  # the task token in the path is the credential; no authorizer
                continue
            for status, description in gateway_answers.items():
                answer = {"description": description, "content": {"application/problem+json": {"schema": problem_ref}}}
                operation.setdefault("responses", {}).setdefault(status, answer)
    return schema


def without_no_content_bodies(schema: dict[str, Any]) -> dict[str, Any]:
    """A 204 has no body (RFC 9110), whatever Powertools infers from the route's return type."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).get("204", {}).pop("content", None)
    return schema


def openapi_document(app: APIGatewayRestResolver) -> dict[str, Any]:
    text = app.get_openapi_json_schema(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        security_schemes={"bearer": HTTPBearer(description="The tenant's API key: Authorization: Bearer <key>")},
        security=[{"bearer": []}],
    )
    return with_gateway_answers(without_no_content_bodies(as_problem_responses(json.loads(text))))


def register_openapi_route(app: APIGatewayRestResolver, routes: RouteTable, cached: dict[str, Any]) -> None:
    @routes.route("/openapi.json", "GET", include_in_schema=False)
    def get_openapi() -> Response[Any]:
        if "document" not in cached:
            cached["document"] = openapi_document(app)
        # The app is shared; the jobs are the deployment's (deps), fixed after cold start: keep the last.
        specs = tuple(cast(ApiDeps, app.context["deps"]).registry.specs())
        if cached.get("jobs", (None,))[0] != specs:
            cached["jobs"] = (specs, with_jobs(cached["document"], specs))
        return Response(status_code=200, content_type=JSON, body=cached["jobs"][1])
