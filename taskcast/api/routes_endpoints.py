"""``/webhook-endpoints``: a tenant's registered webhook endpoints (docs/webhooks.md, "Registered endpoints").

Thin: each route reads the tenant and the request, calls ``EndpointAdmin`` and shapes the answer; its
exceptions become problems here. Another tenant's endpoint answers exactly as an unknown one (404).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from taskcast.api.deps import ApiDeps
from taskcast.api.endpoint_models import (
    CreatedEndpoint,
    CreateEndpointRequest,
    EndpointDeliveryPage,
    EndpointFilterBody,
    EndpointShown,
    ReplayAnswer,
    ReplayRequest,
    RotatedSecret,
    TestEventAnswer,
    UpdateEndpointRequest,
)
from taskcast.api.models import Problem
from taskcast.api.problems import ProblemError, unauthorized
from taskcast.api.request_info import tenant_of
from taskcast.api.responses import JSON
from taskcast.api.routing import RouteTable
from taskcast.webhooks.delivery import CallbackRefused
from taskcast.webhooks.endpoint_admin import EndpointAdmin, EndpointDisabled, EndpointLimit, ReplayBusy, TooSoon
from taskcast.webhooks.endpoints import (
    MAX_PAGE,
    EndpointFilter,
    InvalidEndpoint,
    is_delivery_id,
    is_endpoint_id,
    page_size,
    parse_filter,
)

TAGS = ["webhook endpoints"]
PROBLEM = {"application/problem+json": {"model": Problem}}
NOT_FOUND = {"description": "No such endpoint for this tenant (another tenant's answers the same)", "content": PROBLEM}
BAD_REQUEST = {"description": "Invalid fields, or a URL the URL guard refuses", "content": PROBLEM}
DISABLED = {"description": "The endpoint is disabled: enable it first", "content": PROBLEM}
NO_STORE = {"Cache-Control": "no-store"}

T = TypeVar("T")


def _content(model: Any) -> dict[str, Any]:
    return {JSON: {"model": model}}


def endpoint_not_found(endpoint_id: str) -> ProblemError:
    return ProblemError(
        404, "endpoint-not-found", "Webhook endpoint not found", f"There is no endpoint {endpoint_id!r}."
    )


def delivery_not_found(delivery_id: str) -> ProblemError:
    return ProblemError(404, "delivery-not-found", "Delivery not found", f"There is no delivery {delivery_id!r}.")


@contextmanager
def as_problems() -> Iterator[None]:
    """The admin's refusals as problem+json answers."""
    try:
        yield
    except InvalidEndpoint as error:
        raise ProblemError(400, "invalid-request", "Invalid request", str(error)) from None
    except CallbackRefused as error:
        raise ProblemError(400, "callback-refused", "Endpoint URL refused", str(error)) from None
    except EndpointLimit as error:
        raise ProblemError(409, "endpoint-limit-reached", "Too many webhook endpoints", str(error)) from None
    except EndpointDisabled as error:
        raise ProblemError(409, "endpoint-disabled", "Webhook endpoint disabled", str(error)) from None
    except ReplayBusy as error:
        raise ProblemError(
            429, "replay-busy", "Replays being queued", str(error), headers={"Retry-After": "1"}
        ) from None
    except TooSoon as error:
        raise ProblemError(
            429, "too-soon", "Too many for this endpoint now", str(error),
            headers={"Retry-After": str(math.ceil(error.retry_after_s))},
        ) from None


def found(value: T | None, endpoint_id: str) -> T:
    if value is None:
        raise endpoint_not_found(endpoint_id)
    return value


def to_filter(body: EndpointFilterBody | None) -> EndpointFilter:
    if body is None:
        return EndpointFilter()
    return parse_filter(body.statuses, body.types)


def parse_since(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise InvalidEndpoint("since is not an ISO-8601 time, e.g. 2026-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status_code=status, content_type=JSON, body=body, headers=headers)


def register_endpoint_routes(app: APIGatewayRestResolver, routes: RouteTable) -> None:
    def admin() -> EndpointAdmin:
        return cast(ApiDeps, app.context["deps"]).endpoints

    def tenant() -> str:
        found_tenant = tenant_of(app.current_event.raw_event)
        if found_tenant is None:
            raise unauthorized()
        return found_tenant

    def checked(endpoint_id: str) -> str:
        # A malformed id cannot exist: answer as for an unknown one, without a read.
        if not is_endpoint_id(endpoint_id):
            raise endpoint_not_found(endpoint_id)
        return endpoint_id

    def call(function: Callable[[], T]) -> T:
        with as_problems():
            return function()

    @routes.route(
        "/webhook-endpoints",
        "POST",
        summary="Register a webhook endpoint",
        description=(
            "Every change of this tenant's tasks that matches `filter` is POSTed to `url`, signed (Standard "
            "Webhooks) with the endpoint's own secret, answered here once (`secret`). `webhook-id` is "
            "`{endpoint_id}.{task_id}.{version}`. The URL guard checks `url` now and at every delivery."
        ),
        tags=TAGS,
        responses={
            201: {"description": "The endpoint, with its secret", "content": _content(CreatedEndpoint)},
            400: BAD_REQUEST,
            409: {"description": "The tenant has as many endpoints as it may", "content": PROBLEM},
        },
    )
    def create(request: CreateEndpointRequest) -> Response[Any]:
        owner = tenant()
        endpoint, secret = call(
            lambda: admin().create(owner, request.url, to_filter(request.filter), request.description)
        )
        return json_response(201, {**endpoint.as_json(), "secret": secret}, NO_STORE)

    @routes.route(
        "/webhook-endpoints",
        "GET",
        summary="The tenant's webhook endpoints (no secrets)",
        tags=TAGS,
        responses={200: {"description": "Endpoints, oldest first", "content": _content(list[EndpointShown])}},
    )
    def list_endpoints() -> Response[Any]:
        return json_response(200, [e.as_json() for e in admin().endpoints.list(tenant())])

    @routes.route(
        "/webhook-endpoints/<endpoint_id>",
        "GET",
        summary="One webhook endpoint (no secret); disabled_reason and disabled_at say why it is off",
        tags=TAGS,
        responses={200: {"description": "The endpoint", "content": _content(EndpointShown)}, 404: NOT_FOUND},
    )
    def get_endpoint(endpoint_id: str) -> Response[Any]:
        endpoint = admin().endpoints.get(tenant(), checked(endpoint_id))
        return json_response(200, found(endpoint, endpoint_id).as_json())

    @routes.route(
        "/webhook-endpoints/<endpoint_id>",
        "PATCH",
        summary="Change a webhook endpoint's url, filter, description or enabled",
        description=(
            "Only the fields given change. `enabled: true` switches a disabled endpoint back on: changes made "
            "while it was off were logged as `disabled`, not queued; replay them (paced) if they are wanted."
        ),
        tags=TAGS,
        responses={
            200: {"description": "The endpoint as it is now", "content": _content(EndpointShown)},
            400: BAD_REQUEST,
            404: NOT_FOUND,
        },
    )
    def update(endpoint_id: str, request: UpdateEndpointRequest) -> Response[Any]:
        owner, checked_id = tenant(), checked(endpoint_id)
        given = request.model_fields_set
        endpoint = call(
            lambda: admin().update(
                owner,
                checked_id,
                url=request.url,
                filter=to_filter(request.filter) if "filter" in given else None,
                description=request.description,
                clear_description="description" in given and request.description is None,
                enabled=request.enabled,
            )
        )
        return json_response(200, found(endpoint, endpoint_id).as_json())

    @routes.route(
        "/webhook-endpoints/<endpoint_id>",
        "DELETE",
        summary="Delete a webhook endpoint",
        tags=TAGS,
        responses={204: {"description": "Deleted"}, 404: NOT_FOUND},
    )
    def delete(endpoint_id: str) -> Response[Any]:
        if not admin().delete(tenant(), checked(endpoint_id)):
            raise endpoint_not_found(endpoint_id)
        return Response(status_code=204)

    @routes.route(
        "/webhook-endpoints/<endpoint_id>/rotate-secret",
        "POST",
        summary="Rotate a webhook endpoint's signing secret",
        description="Answers the new secret. The previous one keeps signing, beside it, for the overlap (24 h).",
        tags=TAGS,
        responses={200: {"description": "The new secret", "content": _content(RotatedSecret)}, 404: NOT_FOUND},
    )
    def rotate(endpoint_id: str) -> Response[Any]:
        secret = admin().rotate_secret(tenant(), checked(endpoint_id))
        return json_response(200, {"secret": found(secret, endpoint_id)}, NO_STORE)

    @routes.route(
        "/webhook-endpoints/<endpoint_id>/deliveries",
        "GET",
        summary="The endpoint's delivery attempts, newest first, a page at a time",
        tags=TAGS,
        responses={
            200: {"description": "A page of attempts", "content": _content(EndpointDeliveryPage)},
            400: {"description": "A bad limit or cursor", "content": PROBLEM},
            404: NOT_FOUND,
        },
    )
    def deliveries(
        endpoint_id: str,
        limit: Annotated[int | None, Query(description=f"Items per page, 1 to {MAX_PAGE} (20)")] = None,
        cursor: Annotated[str | None, Query(max_length=200, description="The previous page's next")] = None,
    ) -> Response[Any]:
        owner, checked_id = tenant(), checked(endpoint_id)
        page = call(lambda: admin().deliveries(owner, checked_id, page_size(limit), cursor))
        page = found(page, endpoint_id)
        return json_response(200, {"items": page.items, "next": page.next_cursor})

    @routes.route(
        "/webhook-endpoints/<endpoint_id>/replay",
        "POST",
        summary="Send again what was delivered (or failed) since a time",
        description=(
            "Queues, once each, every webhook logged for this endpoint since `since` (with `only_failed`, each "
            "whose last attempt failed or was not sent while the endpoint was disabled): a new attempt with "
            "the same `webhook-id` and body, with the whole retry schedule, at most TASKCAST_ENDPOINT_REPLAY_RATE "
            "a second (10) per endpoint, after the replays already queued for it, and at most 1000 per call."
        ),
        tags=TAGS,
        responses={
            202: {"description": "How many were queued", "content": _content(ReplayAnswer)},
            400: {"description": "since is not an ISO-8601 time", "content": PROBLEM},
            404: NOT_FOUND,
            409: DISABLED,
            429: {"description": "Other replays are being queued, or too many wait already", "content": PROBLEM},
        },
    )
    def replay(endpoint_id: str, request: ReplayRequest) -> Response[Any]:
        owner, checked_id = tenant(), checked(endpoint_id)
        queued = call(lambda: admin().replay(owner, checked_id, parse_since(request.since), request.only_failed))
        return json_response(202, {"queued": found(queued, endpoint_id)})

    @routes.route(
        "/webhook-endpoints/<endpoint_id>/deliveries/<delivery_id>/resend",
        "POST",
        summary="Send one logged delivery again (a new attempt, the same webhook-id)",
        tags=TAGS,
        responses={
            202: {"description": "Queued", "content": _content(ReplayAnswer)},
            404: {"description": "No such endpoint or delivery for this tenant", "content": PROBLEM},
            409: DISABLED,
            429: {"description": "Too many replayed or resent deliveries wait already", "content": PROBLEM},
        },
    )
    def resend(endpoint_id: str, delivery_id: str) -> Response[Any]:
        owner, checked_id = tenant(), checked(endpoint_id)
        if not is_delivery_id(delivery_id):
            raise delivery_not_found(delivery_id)
        queued = found(call(lambda: admin().resend(owner, checked_id, delivery_id)), endpoint_id)
        if not queued:
            raise delivery_not_found(delivery_id)
        return json_response(202, {"queued": 1})

    @routes.route(
        "/webhook-endpoints/<endpoint_id>/test",
        "POST",
        summary="Send a signed webhook.test message now and answer what the receiver said",
        description=(
            'POSTs `{"type": "webhook.test", "timestamp", "data": {"endpoint_id", "message"}}`, signed like '
            "every delivery, through the URL guard, within the receiver timeout (at most 20 s here). An "
            "unreachable receiver is `outcome: failed` with `status_code: null`, still a 200."
        ),
        tags=TAGS,
        responses={
            200: {"description": "The receiver's answer", "content": _content(TestEventAnswer)},
            404: NOT_FOUND,
            429: {"description": "A test event of this endpoint was sent moments ago", "content": PROBLEM},
        },
    )
    def test(endpoint_id: str) -> Response[Any]:
        owner, checked_id = tenant(), checked(endpoint_id)
        outcome = found(call(lambda: admin().test(owner, checked_id)), endpoint_id)
        body: dict[str, Any] = {"status_code": outcome.status_code, "outcome": outcome.outcome}
        if outcome.error:
            body["error"] = outcome.error
        return json_response(200, body)
