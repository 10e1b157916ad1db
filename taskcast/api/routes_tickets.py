"""``POST /ws-tickets``: a short-lived, single-use ticket for one WebSocket ``$connect`` (``?ticket=``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from taskcast.api.deps import ApiDeps
from taskcast.api.models import CreateWsTicketRequest, Problem, WsTicket
from taskcast.api.problems import unauthorized
from taskcast.api.request_info import tenant_of
from taskcast.api.responses import JSON
from taskcast.api.routing import RouteTable

PROBLEM = {"application/problem+json": {"model": Problem}}


def iso_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def register_ticket_routes(app: APIGatewayRestResolver, routes: RouteTable) -> None:
    @routes.route(
        "/ws-tickets",
        "POST",
        summary="Get a WebSocket ticket",
        description=(
            "Answers an opaque ticket that opens one WebSocket connection for this tenant: connect to "
            "`links.websocket` with `?ticket=<ticket>` before `expires_at` (default 60 s, at most 300 s with "
            "`ttl_seconds`). The first `$connect` uses it up; a used, expired or unknown ticket is refused at the "
            "handshake (403). Prefer it to `?token=<api key>`, which puts the long-lived key in URLs and logs."
        ),
        tags=["websocket"],
        responses={
            201: {"description": "The ticket", "content": {JSON: {"model": WsTicket}}},
            400: {"description": "ttl_seconds is not a whole number from 1 to 300", "content": PROBLEM},
        },
    )
    def create(request: Annotated[CreateWsTicketRequest | None, Body()] = None) -> Response[Any]:
        tenant = tenant_of(app.current_event.raw_event)
        if tenant is None:
            raise unauthorized()
        deps: ApiDeps = app.context["deps"]
        ttl_s = (request or CreateWsTicketRequest()).ttl_seconds
        issued = deps.tickets.issue(tenant, ttl_s)
        body = {"ticket": issued.ticket, "expires_at": iso_time(issued.expires_at)}
        # The ticket is a credential: no cache may keep it.
        return Response(status_code=201, content_type=JSON, body=body, headers={"Cache-Control": "no-store"})
