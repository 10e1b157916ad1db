"""The Lambda authorizers map an API key to its tenant, answer IAM policies, and never log a key."""

from __future__ import annotations

import copy
import logging

import pytest

from handlers import authorizer
from handlers.authorizer import AuthorizerDeps
from taskcast.tenant_cache import RefreshingTenantDirectory
from taskcast.tenants import TenantDirectory
from tests.functional.rest_harness import FakeLambdaContext, load_event

BAD_KEY = "key-nobody-has-this-0000"


class NoTickets:
    """Token tests never reach the ticket store."""

    def redeem(self, ticket: str) -> str | None:
        raise AssertionError("no ticket was offered")


@pytest.fixture
def deps(settings) -> AuthorizerDeps:
    return AuthorizerDeps(tenants=TenantDirectory.from_settings(settings), tickets=NoTickets())


@pytest.fixture(autouse=True)
def capture_everything(caplog):
    caplog.set_level(logging.DEBUG)


def rest_event(authorization: str | None, header_name: str = "Authorization") -> dict:
    event = copy.deepcopy(load_event("rest-authorizer-request.json"))
    event["methodArn"] = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/tasks/1234"
    if authorization is not None:
        event["headers"][header_name] = authorization
        event["multiValueHeaders"][header_name] = [authorization]
    return event


def websocket_event(token: str | None) -> dict:
    event = copy.deepcopy(load_event("websocket-authorizer-connect.json"))
    event["queryStringParameters"] = {"token": token} if token is not None else {}
    event["multiValueQueryStringParameters"] = {"token": [token]} if token is not None else {}
    return event


def assert_no_key_logged(caplog, capsys, tenants) -> None:
    out, err = capsys.readouterr()
    logged = caplog.text + out + err
    for secret in [BAD_KEY, *(tenant["api_key"] for tenant in tenants.values())]:
        assert secret not in logged


def test_rest_good_key_allows_every_route_with_the_tenant_in_context(deps, tenants, caplog, capsys) -> None:
    answer = authorizer.rest_handler(rest_event(f"Bearer {tenants['acme']['api_key']}"), FakeLambdaContext(), deps)
    assert answer["principalId"] == "acme"
    assert answer["context"] == {"tenant": "acme"}
    statement = answer["policyDocument"]["Statement"][0]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        # API Gateway caches the policy per key for every route: it must cover the whole API.
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/*/*",
    }
    assert "acme" in caplog.text
    assert_no_key_logged(caplog, capsys, tenants)


def test_rest_header_name_and_scheme_are_case_insensitive(deps, tenants) -> None:
    event = rest_event(f"bearer {tenants['globex']['api_key']}", header_name="authorization")
    assert authorizer.rest_handler(event, None, deps)["context"] == {"tenant": "globex"}


def test_rest_unknown_key_is_denied(deps, tenants, caplog, capsys) -> None:
    answer = authorizer.rest_handler(rest_event(f"Bearer {BAD_KEY}"), None, deps)
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "context" not in answer
    assert_no_key_logged(caplog, capsys, tenants)


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic dXNlcjpwYXNz", f"Token {BAD_KEY}"])
def test_rest_missing_or_malformed_header_is_unauthorized(deps, tenants, caplog, capsys, authorization) -> None:
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.rest_handler(rest_event(authorization), None, deps)
    assert_no_key_logged(caplog, capsys, tenants)


def test_websocket_good_token_allows_connect_with_the_tenant(deps, tenants, caplog, capsys) -> None:
    event = websocket_event(tenants["acme"]["api_key"])
    answer = authorizer.websocket_handler(event, FakeLambdaContext(), deps)
    assert answer["context"] == {"tenant": "acme"}
    statement = answer["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == event["methodArn"]
    assert_no_key_logged(caplog, capsys, tenants)


def test_websocket_bad_or_missing_token_is_refused(deps, tenants, caplog, capsys) -> None:
    answer = authorizer.websocket_handler(websocket_event(BAD_KEY), None, deps)
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.websocket_handler(websocket_event(None), None, deps)
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.websocket_handler(websocket_event(""), None, deps)
    assert_no_key_logged(caplog, capsys, tenants)


def test_the_handlers_directory_is_read_from_the_environment(settings, tenants) -> None:
    deps = AuthorizerDeps(tenants=RefreshingTenantDirectory.from_settings(settings), tickets=NoTickets())
    answer = authorizer.rest_handler(rest_event(f"Bearer {tenants['acme']['api_key']}"), None, deps)
    assert answer["context"] == {"tenant": "acme"}
