"""The REST API of the template as API Gateway (REST, v1 proxy integration) sees it, as pure data:
routes from each function's ``Events`` of ``Type: Api``, the authorizers of ``AWS::Serverless::Api``,
route matching, the events handed to the authorizer and the integration, and the integration's
answer turned back into an HTTP response."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from taskcast.headers import header
from taskcast.local.functions import FunctionRegistry, LocalFunction
from taskcast.local.resolve import TemplateResolver, local_id
from taskcast.local.template import resources_of_type

IMPLICIT_API = "ServerlessRestApi"


@dataclass(frozen=True)
class Authorizer:
    name: str
    function: LocalFunction
    payload_type: str = "REQUEST"  # or TOKEN
    identity_headers: tuple[str, ...] = ()
    identity_query_strings: tuple[str, ...] = ()
    token_header: str = "Authorization"
    ttl_s: float = 300.0


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST, ..., or ANY
    resource: str  # the template path: /tasks/{id}
    function: LocalFunction
    authorizer: Authorizer | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        return _segments(self.resource)


@dataclass
class RestApi:
    logical_id: str
    api_id: str
    stage: str
    routes: list[Route] = field(default_factory=list)
    gateway_responses: dict[str, dict[str, Any]] = field(default_factory=dict)


def _segments(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.strip("/").split("/") if part)


def _identity(identity: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(identity.get("Headers") or ()), tuple(identity.get("QueryStrings") or ())


def _authorizers(properties: dict[str, Any], functions: FunctionRegistry) -> dict[str, Authorizer]:
    found: dict[str, Authorizer] = {}
    for name, config in ((properties.get("Auth") or {}).get("Authorizers") or {}).items():
        function = functions.find(str(config.get("FunctionArn", "")))
        if function is None:
            continue  # a Cognito or unknown authorizer: not emulated
        identity = config.get("Identity") or {}
        headers, query_strings = _identity(identity)
        payload_type = str(config.get("FunctionPayloadType", "TOKEN")).upper()
        found[name] = Authorizer(
            name=name,
            function=function,
            payload_type=payload_type,
            identity_headers=headers,
            identity_query_strings=query_strings,
            token_header=str(identity.get("Header", "Authorization")),
            ttl_s=float(identity.get("ReauthorizeEvery", 300)),
        )
    return found


def rest_apis(resolver: TemplateResolver, functions: FunctionRegistry) -> list[RestApi]:
    """Every REST API of the template with its routes (the implicit API too, when events use it)."""
    apis: dict[str, RestApi] = {}
    authorizers: dict[str, dict[str, Authorizer]] = {}
    defaults: dict[str, str | None] = {}
    for logical_id in resources_of_type(resolver.template, "AWS::Serverless::Api"):
        properties = resolver.properties(logical_id)
        apis[logical_id] = RestApi(
            logical_id=logical_id,
            api_id=local_id(logical_id),
            stage=str(properties.get("StageName", "Prod")),
            gateway_responses=properties.get("GatewayResponses") or {},
        )
        authorizers[logical_id] = _authorizers(properties, functions)
        defaults[logical_id] = (properties.get("Auth") or {}).get("DefaultAuthorizer")
    for function in functions:
        for event in function.events.values():
            if event.get("Type") != "Api":
                continue
            properties = event.get("Properties") or {}
            api_logical_id = _api_of(properties.get("RestApiId"), resolver) or IMPLICIT_API
            if api_logical_id not in apis:
                apis[api_logical_id] = RestApi(api_logical_id, local_id(api_logical_id), "Prod")
                authorizers[api_logical_id], defaults[api_logical_id] = {}, None
            auth = properties.get("Auth") or {}
            authorizer_name = auth.get("Authorizer", defaults[api_logical_id])
            authorizer = None if authorizer_name in (None, "NONE") else authorizers[api_logical_id].get(authorizer_name)
            apis[api_logical_id].routes.append(
                Route(str(properties["Method"]).upper(), str(properties["Path"]), function, authorizer)
            )
    return list(apis.values())


def _api_of(reference: Any, resolver: TemplateResolver) -> str | None:
    """The logical id behind a resolved ``RestApiId`` (resolved Refs are local ids)."""
    if reference is None:
        return None
    for logical_id in resources_of_type(resolver.template, "AWS::Serverless::Api"):
        if reference in (logical_id, local_id(logical_id)):
            return logical_id
    return None


# ---------------------------------------------------------------------------------------------- routing
@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_parameters: dict[str, str]


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = allowed


def _match_segments(template: tuple[str, ...], path: tuple[str, ...]) -> dict[str, str] | None:
    parameters: dict[str, str] = {}
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):
            rest = path[index:]
            if not rest:
                return None
            parameters[part[1:-2]] = "/".join(unquote(segment) for segment in rest)
            return parameters
        if index >= len(path):
            return None
        if part.startswith("{") and part.endswith("}"):
            parameters[part[1:-1]] = unquote(path[index])
        elif part != unquote(path[index]):
            return None
    return parameters if len(template) == len(path) else None


def _specificity(route: Route) -> tuple[int, ...]:
    # Literal segments beat {variables}, which beat {greedy+} ones, position by position.
    return tuple(0 if part.endswith("+}") else 1 if part.startswith("{") else 2 for part in route.segments)


def match_route(routes: Iterable[Route], method: str, path: str) -> RouteMatch | None:
    """The route for ``method path``; None when no resource matches the path.

    Raises ``MethodNotAllowed`` when a resource matches but not with this method.
    """
    segments = _segments(path)
    candidates = []
    for route in routes:
        parameters = _match_segments(route.segments, segments)
        if parameters is not None:
            candidates.append((route, parameters))
    if not candidates:
        return None
    best_resource = max(candidates, key=lambda item: _specificity(item[0]))[0].resource
    same_resource = [item for item in candidates if item[0].resource == best_resource]
    for route, parameters in same_resource:
        if route.method == method:
            return RouteMatch(route, parameters)
    for route, parameters in same_resource:
        if route.method == "ANY":
            return RouteMatch(route, parameters)
    raise MethodNotAllowed(sorted({route.method for route, _ in same_resource}))


# ---------------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class HttpRequest:
    """What the gateway read from the client."""

    method: str
    path: str  # without the query string, as sent
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    request_id: str
    received_at: datetime


def _single_and_multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value
        multi.setdefault(key, []).append(value)
    return (single or None), (multi or None)


def request_context(api: RestApi, request: HttpRequest, resource: str, account_id: str) -> dict[str, Any]:
    host = header(request.headers, "Host") or "127.0.0.1"
    return {
        "accountId": account_id,
        "apiId": api.api_id,
        "domainName": host,
        "domainPrefix": host.split(".")[0].split(":")[0],
        "extendedRequestId": request.request_id,
        "httpMethod": request.method,
        "identity": {
            "accessKey": None,
            "accountId": None,
            "caller": None,
            "cognitoAuthenticationProvider": None,
            "cognitoAuthenticationType": None,
            "cognitoIdentityId": None,
            "cognitoIdentityPoolId": None,
            "principalOrgId": None,
            "sourceIp": request.source_ip,
            "user": None,
            "userAgent": header(request.headers, "User-Agent"),
            "userArn": None,
        },
        "path": f"/{api.stage}{request.path}",
        "protocol": "HTTP/1.1",
        "requestId": request.request_id,
        "requestTime": request.received_at.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(request.received_at.timestamp() * 1000),
        "resourceId": local_id(f"{api.logical_id}{resource}", 6),
        "resourcePath": resource,
        "stage": api.stage,
    }


def method_arn(api: RestApi, method: str, path: str, region: str, account_id: str) -> str:
    return f"arn:aws:execute-api:{region}:{account_id}:{api.api_id}/{api.stage}/{method}/{path.lstrip('/')}"


def forwarded_headers(request: HttpRequest, port: int) -> list[tuple[str, str]]:
    """The client's headers plus the ones API Gateway adds in front of the integration."""
    added = [
        ("X-Forwarded-For", request.source_ip),
        ("X-Forwarded-Port", str(port)),
        ("X-Forwarded-Proto", "http"),
        ("X-Amzn-Trace-Id", f"Root=1-{int(request.received_at.timestamp()):08x}-{request.request_id[:24]}"),
    ]
    present = {key.lower() for key, _ in request.headers}
    return request.headers + [(key, value) for key, value in added if key.lower() not in present]


def _body(raw: bytes) -> tuple[str | None, bool]:
    if not raw:
        return None, False
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), True


def proxy_event(
    api: RestApi, match: RouteMatch, request: HttpRequest, headers: list[tuple[str, str]],
    authorizer_context: dict[str, Any] | None, account_id: str,
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy integration event."""
    single_headers, multi_headers = _single_and_multi(headers)
    single_query, multi_query = _single_and_multi(parse_qsl(request.query, keep_blank_values=True))
    body, is_base64 = _body(request.body)
    context = request_context(api, request, match.route.resource, account_id)
    context["authorizer"] = authorizer_context
    return {
        "resource": match.route.resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": match.path_parameters or None,
        "stageVariables": None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": is_base64,
    }


def authorizer_event(
    api: RestApi, authorizer: Authorizer, match: RouteMatch, request: HttpRequest, headers: list[tuple[str, str]],
    region: str, account_id: str,
) -> dict[str, Any]:
    arn = method_arn(api, request.method, request.path, region, account_id)
    if authorizer.payload_type == "TOKEN":
        token = header(headers, authorizer.token_header) or ""
        return {"type": "TOKEN", "authorizationToken": token, "methodArn": arn}
    single_headers, multi_headers = _single_and_multi(headers)
    single_query, multi_query = _single_and_multi(parse_qsl(request.query, keep_blank_values=True))
    return {
        "type": "REQUEST",
        "methodArn": arn,
        "resource": match.route.resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": single_headers or {},
        "multiValueHeaders": multi_headers or {},
        "queryStringParameters": single_query or {},
        "multiValueQueryStringParameters": multi_query or {},
        "pathParameters": match.path_parameters,
        "stageVariables": {},
        "requestContext": request_context(api, request, match.route.resource, account_id),
    }


def identity_values(authorizer: Authorizer, request: HttpRequest) -> tuple[str, ...] | None:
    """The identity sources' values, or None when one is missing (API Gateway answers 401 unasked)."""
    if authorizer.payload_type == "TOKEN":
        token = header(request.headers, authorizer.token_header)
        return (token,) if token else None
    query = dict(parse_qsl(request.query, keep_blank_values=True))
    values: list[str] = []
    for name in authorizer.identity_headers:
        value = header(request.headers, name)
        if not value:
            return None
        values.append(value)
    for name in authorizer.identity_query_strings:
        if not query.get(name):
            return None
        values.append(query[name])
    return tuple(values)


# ---------------------------------------------------------------------------------------------- answers
class BadIntegrationResponse(ValueError):
    """The function's answer is not a valid proxy response (API Gateway answers 502)."""


def proxy_response(payload: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy answer → status, headers and body bytes."""
    if not isinstance(payload, dict):
        raise BadIntegrationResponse("the answer is not a JSON object")
    status = payload.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise BadIntegrationResponse(f"statusCode {status!r} is not an HTTP status")
    headers: list[tuple[str, str]] = []
    # Both maps merge; for a key in both, API Gateway keeps only the multi-value list.
    for key, values in (payload.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise BadIntegrationResponse(f"multiValueHeaders.{key} is not a list")
        headers.extend((str(key), _header_text(value)) for value in values)
    in_multi = {name.lower() for name, _ in headers}
    for key, value in (payload.get("headers") or {}).items():
        if isinstance(value, dict | list):
            raise BadIntegrationResponse(f"header {key} is not a single value")
        if str(key).lower() not in in_multi:
            headers.append((str(key), _header_text(value)))
    body = payload.get("body")
    if body is None:
        raw = b""
    elif not isinstance(body, str):
        raise BadIntegrationResponse("body is not a string")
    elif payload.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except binascii.Error as error:
            raise BadIntegrationResponse("body is not valid base64") from error
    else:
        raw = body.encode("utf-8")
    return status, headers, raw


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
