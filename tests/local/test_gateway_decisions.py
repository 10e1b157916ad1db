"""The gateways' pure decisions: routing, proxy answers, authorizer policies, gateway responses, files."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from taskcast.local.authorizers import ALLOW, DENY, FAILURE, UNAUTHORIZED, AuthorizerCache, decide, policy_effect
from taskcast.local.functions import Invocation, LocalFunction
from taskcast.local.http_gateway import config_script, dashboard_file, gateway_response
from taskcast.local.rest_api import (
    BadIntegrationResponse,
    MethodNotAllowed,
    RestApi,
    Route,
    match_route,
    proxy_response,
)
from taskcast.local.websocket_api import DEFAULT, WebSocketApi, WebSocketRoute, select_route

FUNCTION = LocalFunction("Fn", "fn", "arn:aws:lambda:us-east-1:123456789012:function:fn", "x.y")
ROUTES = [
    Route("GET", "/tasks/{id}", FUNCTION),
    Route("DELETE", "/tasks/{id}", FUNCTION),
    Route("GET", "/tasks/latest", FUNCTION),
    Route("ANY", "/files/{path+}", FUNCTION),
    Route("POST", "/tasks", FUNCTION),
]


def test_literal_segments_beat_variables() -> None:
    assert match_route(ROUTES, "GET", "/tasks/latest").route.resource == "/tasks/latest"
    match = match_route(ROUTES, "GET", "/tasks/abc")
    assert (match.route.resource, match.path_parameters) == ("/tasks/{id}", {"id": "abc"})


def test_greedy_variables_take_the_rest_and_any_takes_every_method() -> None:
    match = match_route(ROUTES, "PUT", "/files/a/b%20c")
    assert match.path_parameters == {"path": "a/b c"}


def test_a_trailing_slash_names_the_same_resource() -> None:
    assert match_route(ROUTES, "POST", "/tasks/").route.resource == "/tasks"


def test_no_resource_is_none_and_another_method_is_refused_with_the_allowed_ones() -> None:
    assert match_route(ROUTES, "GET", "/nothing") is None
    with pytest.raises(MethodNotAllowed) as refused:
        match_route(ROUTES, "PATCH", "/tasks/abc")
    assert refused.value.allowed == ["DELETE", "GET"]


def test_a_proxy_answer_merges_headers_with_multi_values_winning() -> None:
    status, headers, body = proxy_response({
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "Set-Cookie": "single"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": '{"ok": true}',
    })
    assert status == 201 and body == b'{"ok": true}'
    assert sorted(headers) == [("Content-Type", "application/json"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def test_a_base64_proxy_body_is_decoded() -> None:
    _, _, body = proxy_response({"statusCode": 200, "isBase64Encoded": True,
                                 "body": base64.b64encode(b"\x00\x01").decode()})
    assert body == b"\x00\x01"


@pytest.mark.parametrize("payload", [None, "text", {"body": "x"}, {"statusCode": "abc"}, {"statusCode": 700},
                                     {"statusCode": 200, "body": {"not": "a string"}},
                                     {"statusCode": 200, "isBase64Encoded": True, "body": "***"}])
def test_invalid_proxy_answers_are_refused(payload: object) -> None:
    with pytest.raises(BadIntegrationResponse):
        proxy_response(payload)


ARN = "arn:aws:execute-api:us-east-1:123456789012:api/prod/GET/tasks/1"


def _policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_policies_match_resources_with_wildcards_and_an_explicit_deny_wins() -> None:
    allow_all = {"Action": "execute-api:Invoke", "Effect": "Allow",
                 "Resource": "arn:aws:execute-api:us-east-1:123456789012:api/prod/*/*"}
    assert policy_effect(_policy(allow_all), ARN) == "Allow"
    deny_one = {"Action": ["execute-api:*"], "Effect": "Deny", "Resource": [ARN]}
    assert policy_effect(_policy(allow_all, deny_one), ARN) == "Deny"
    elsewhere = {**allow_all, "Resource": "arn:aws:execute-api:us-east-1:123456789012:other/*"}
    assert policy_effect(_policy(elsewhere), ARN) is None


def test_authorizer_outcomes() -> None:
    allow = {"principalId": "acme", "context": {"tenant": "acme", "admin": False, "n": 3},
             "policyDocument": _policy({"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ARN})}
    decision = decide(Invocation("r", payload=allow), ARN)
    assert decision.outcome == ALLOW
    assert decision.request_context(5) == {"principalId": "acme", "integrationLatency": 5, "tenant": "acme",
                                           "admin": "false", "n": "3"}
    deny = {**allow, "policyDocument": _policy({"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "*"})}
    assert decide(Invocation("r", payload=deny), ARN).outcome == DENY
    assert decide(Invocation("r", error={"errorMessage": "Unauthorized"}), ARN).outcome == UNAUTHORIZED
    assert decide(Invocation("r", error={"errorMessage": "boom"}), ARN).outcome == FAILURE
    assert decide(Invocation("r", payload={"principalId": "x"}), ARN).outcome == FAILURE
    nested = {**allow, "context": {"deep": {"no": 1}}}
    assert decide(Invocation("r", payload=nested), ARN).outcome == FAILURE


def test_the_authorizer_cache_keeps_policies_for_their_ttl_only() -> None:
    now = [0.0]
    cache = AuthorizerCache(300, clock=lambda: now[0])
    cache.put(("key",), Invocation("r", payload={"principalId": "p"}))
    cache.put(("bad",), Invocation("r", error={"errorMessage": "Unauthorized"}))
    assert cache.get(("key",)) is not None and cache.get(("bad",)) is None
    now[0] = 301
    assert cache.get(("key",)) is None
    assert AuthorizerCache(0).get(("key",)) is None


def test_gateway_responses_use_the_templates_customization() -> None:
    api = RestApi("Api", "id", "prod", gateway_responses={"UNAUTHORIZED": {
        "StatusCode": 401,
        "ResponseTemplates": {"application/json": '{"title": "Unauthorized"}'},
        "ResponseParameters": {"Headers": {"Content-Type": "'application/problem+json'"}},
    }})
    status, headers, body = gateway_response(api, "UNAUTHORIZED")
    assert (status, body) == (401, b'{"title": "Unauthorized"}')
    assert ("Content-Type", "application/problem+json") in headers
    assert gateway_response(api, "INTEGRATION_TIMEOUT")[::2] == (504, b'{"message": "Endpoint request timed out"}')
    assert gateway_response(api, "REQUEST_TOO_LARGE")[::2] == (413, b'{"message": "Request Too Long"}')


def test_only_dashboard_files_of_the_allowed_types_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path.parent / "secret.js").write_text("x")
    assert dashboard_file(tmp_path, "app.js") == (tmp_path / "app.js").resolve()
    for name in ("notes.txt", "../secret.js", "/etc/passwd", "missing.js", ""):
        assert dashboard_file(tmp_path, name) is None


def test_config_script_names_the_websocket_and_the_key_only_when_given() -> None:
    assert config_script("ws://127.0.0.1:3001", None) == (
        b'window.TASKCAST_CONFIG = {"websocketUrl": "ws://127.0.0.1:3001", "apiKey": null};\n'
    )
    assert b'"apiKey": "k"' in config_script("ws://x", "k")


def test_websocket_route_selection() -> None:
    api = WebSocketApi("Ws", "id", "prod", routes={
        "subscribe": WebSocketRoute("subscribe", FUNCTION), DEFAULT: WebSocketRoute(DEFAULT, FUNCTION),
        "$connect": WebSocketRoute("$connect", FUNCTION),
    })
    assert select_route(api, '{"action": "subscribe"}').key == "subscribe"
    for body in ('{"action": "other"}', "not json", '["action"]', '{"action": 3}', '{"action": "$connect"}'):
        assert select_route(api, body).key == DEFAULT
    nested = WebSocketApi("Ws", "id", "prod", "$request.body.meta.kind", routes={"x": WebSocketRoute("x", FUNCTION)})
    assert select_route(nested, '{"meta": {"kind": "x"}}').key == "x"
    assert select_route(nested, '{"meta": {}}') is None
