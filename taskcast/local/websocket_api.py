"""The template's WebSocket API (``AWS::ApiGatewayV2::Api`` with ``ProtocolType: WEBSOCKET``) as pure
data: routes and their functions, the ``$connect`` authorizer and its identity sources, route
selection, and the events API Gateway hands the functions (shapes as in ``tests/fixtures/events``)."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskcast.local.functions import FunctionRegistry, LocalFunction
from taskcast.local.resolve import TemplateResolver, local_id
from taskcast.local.template import resources_of_type

CONNECT, DISCONNECT, DEFAULT = "$connect", "$disconnect", "$default"


@dataclass(frozen=True)
class WebSocketAuthorizer:
    function: LocalFunction
    identity_sources: tuple[str, ...]  # route.request.querystring.token, route.request.header.X


@dataclass(frozen=True)
class WebSocketRoute:
    key: str
    function: LocalFunction | None
    authorizer: WebSocketAuthorizer | None = None
    two_way: bool = False  # RouteResponseSelectionExpression set: the function's body goes back


@dataclass
class WebSocketApi:
    logical_id: str
    api_id: str
    stage: str
    selection_expression: str = "$request.body.action"
    routes: dict[str, WebSocketRoute] = field(default_factory=dict)


def websocket_apis(resolver: TemplateResolver, functions: FunctionRegistry) -> list[WebSocketApi]:
    template = resolver.template
    by_local_id: dict[str, str] = {local_id(logical_id): logical_id for logical_id in template.get("Resources") or {}}
    apis: dict[str, WebSocketApi] = {}
    for logical_id in resources_of_type(template, "AWS::ApiGatewayV2::Api"):
        properties = resolver.properties(logical_id)
        if str(properties.get("ProtocolType", "")).upper() != "WEBSOCKET":
            continue
        apis[local_id(logical_id)] = WebSocketApi(
            logical_id=logical_id,
            api_id=local_id(logical_id),
            stage="$default",
            selection_expression=str(properties.get("RouteSelectionExpression", "$request.body.action")),
        )
    for logical_id in resources_of_type(template, "AWS::ApiGatewayV2::Stage"):
        properties = resolver.properties(logical_id)
        if properties.get("ApiId") in apis:
            apis[properties["ApiId"]].stage = str(properties.get("StageName", "$default"))
    for logical_id in resources_of_type(template, "AWS::ApiGatewayV2::Route"):
        properties = resolver.properties(logical_id)
        api = apis.get(properties.get("ApiId"))
        if api is None:
            continue
        function = _target_function(properties.get("Target"), resolver, functions, by_local_id)
        authorizer = None
        if properties.get("AuthorizationType") == "CUSTOM" and properties.get("AuthorizerId") in by_local_id:
            authorizer = _authorizer(by_local_id[properties["AuthorizerId"]], resolver, functions)
        key = str(properties["RouteKey"])
        two_way = bool(properties.get("RouteResponseSelectionExpression"))
        api.routes[key] = WebSocketRoute(key, function, authorizer, two_way)
    return list(apis.values())


def _target_function(
    target: Any, resolver: TemplateResolver, functions: FunctionRegistry, by_local_id: dict[str, str]
) -> LocalFunction | None:
    if not isinstance(target, str) or not target.startswith("integrations/"):
        return None
    integration = by_local_id.get(target.removeprefix("integrations/"))
    if integration is None:
        return None
    uri = resolver.properties(integration).get("IntegrationUri", "")
    return functions.function_for_arn_reference(str(uri))


def _authorizer(logical_id: str, resolver: TemplateResolver, functions: FunctionRegistry) -> WebSocketAuthorizer | None:
    properties = resolver.properties(logical_id)
    function = functions.function_for_arn_reference(str(properties.get("AuthorizerUri", "")))
    if function is None:
        return None
    return WebSocketAuthorizer(function, tuple(properties.get("IdentitySource") or ()))


# ---------------------------------------------------------------------------------------------- routing
def select_route(api: WebSocketApi, body: str) -> WebSocketRoute | None:
    """The route for a text message: the selection expression's value if a route has that key, else $default."""
    value = selection_value(api.selection_expression, body)
    if isinstance(value, str) and value in api.routes and value not in {CONNECT, DISCONNECT}:
        return api.routes[value]
    return api.routes.get(DEFAULT)


def selection_value(expression: str, body: str) -> Any:
    if not expression.startswith("$request.body."):
        return None
    try:
        value: Any = json.loads(body)
    except (ValueError, RecursionError):  # too deep to parse: no value, so $default (whose handler refuses it)
        return None
    for key in expression.removeprefix("$request.body.").split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def identity_missing(authorizer: WebSocketAuthorizer, headers: dict[str, str], query: dict[str, str]) -> bool:
    """True when an identity source has no value: API Gateway then refuses with 401 without asking."""
    lowered = {key.lower(): value for key, value in headers.items()}
    for source in authorizer.identity_sources:
        if source.startswith("route.request.querystring."):
            if not query.get(source.removeprefix("route.request.querystring.")):
                return True
        elif source.startswith("route.request.header.") and not lowered.get(
            source.removeprefix("route.request.header.").lower()
        ):
            return True
    return False


# ---------------------------------------------------------------------------------------------- events
def new_id() -> str:
    """An API-Gateway-like id: 10 random bytes, URL-safe base64 (``BFaT_fALIAMCKug=``)."""
    return base64.urlsafe_b64encode(os.urandom(10)).decode("ascii")


@dataclass
class ConnectionRequest:
    """What API Gateway knows about a connection from its handshake."""

    connection_id: str
    source_ip: str
    headers: dict[str, str]
    multi_headers: dict[str, list[str]]
    query: dict[str, str]
    multi_query: dict[str, list[str]]
    connected_at: datetime
    domain_name: str
    authorizer: dict[str, Any] | None = None


def _context(api: WebSocketApi, connection: ConnectionRequest, route_key: str, event_type: str,
             request_id: str, at: datetime) -> dict[str, Any]:
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": at.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": int(connection.connected_at.timestamp() * 1000),
        "requestTimeEpoch": int(at.timestamp() * 1000),
        "identity": {"sourceIp": connection.source_ip},
        "requestId": request_id,
        "domainName": connection.domain_name,
        "connectionId": connection.connection_id,
        "apiId": api.api_id,
    }
    if connection.authorizer is not None:
        context["authorizer"] = connection.authorizer
    return context


def method_arn(api: WebSocketApi, route_key: str, region: str, account_id: str) -> str:
    return f"arn:aws:execute-api:{region}:{account_id}:{api.api_id}/{api.stage}/{route_key}"


def authorizer_event(api: WebSocketApi, connection: ConnectionRequest, request_id: str, region: str,
                     account_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "type": "REQUEST",
        "methodArn": method_arn(api, CONNECT, region, account_id),
        "headers": connection.headers,
        "multiValueHeaders": connection.multi_headers,
        "queryStringParameters": connection.query,
        "multiValueQueryStringParameters": connection.multi_query,
        "stageVariables": {},
        "requestContext": _context(api, connection, CONNECT, "CONNECT", request_id, now),
    }


def connect_event(api: WebSocketApi, connection: ConnectionRequest, request_id: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "headers": connection.headers,
        "multiValueHeaders": connection.multi_headers,
        "requestContext": _context(api, connection, CONNECT, "CONNECT", request_id, datetime.now(UTC)),
        "isBase64Encoded": False,
    }
    if connection.query:
        event["queryStringParameters"] = connection.query
        event["multiValueQueryStringParameters"] = connection.multi_query
    return event


def message_event(api: WebSocketApi, connection: ConnectionRequest, route_key: str, body: str,
                  request_id: str) -> dict[str, Any]:
    context = _context(api, connection, route_key, "MESSAGE", request_id, datetime.now(UTC))
    context["messageId"] = new_id()
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(api: WebSocketApi, connection: ConnectionRequest, status_code: int, reason: str,
                     request_id: str) -> dict[str, Any]:
    host = connection.domain_name
    headers = {"Host": host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
    context = _context(api, connection, DISCONNECT, "DISCONNECT", request_id, datetime.now(UTC))
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def gateway_error(code: str, message: str, connection_id: str, request_id: str) -> str:
    """An error frame from the gateway itself: the team's error shape plus API Gateway's ids."""
    return json.dumps(
        {"type": "error", "code": code, "message": message, "connectionId": connection_id, "requestId": request_id}
    )
