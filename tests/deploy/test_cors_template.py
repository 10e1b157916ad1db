"""The template side of CORS: every REST path answers a preflight without credentials, the allowed origins
are a parameter the functions read, and API Gateway's own error answers carry the header too."""

from __future__ import annotations

import re

import pytest

from taskcast.local.template import TEMPLATE_PATH, load_template
from tests.support.sam_transform import transformed_template

TEMPLATE = load_template(TEMPLATE_PATH)


def _rest_events() -> list[dict]:
    events = []
    for resource in TEMPLATE["Resources"].values():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") == "Api" and event["Properties"].get("RestApiId") == {"Ref": "RestApi"}:
                events.append(event["Properties"])
    return events


def test_every_rest_path_answers_a_preflight_past_the_authorizer() -> None:
    events = _rest_events()
    paths = {event["Path"] for event in events if event["Method"].upper() != "OPTIONS"}
    preflights = {event["Path"]: event for event in events if event["Method"].upper() == "OPTIONS"}
    # /openapi.json is a simple GET without credentials: browsers send no preflight for it.
    missing = sorted(paths - set(preflights) - {"/openapi.json"})
    assert not missing, f"add an OPTIONS event (Auth: Authorizer: NONE) for {missing}"
    for path, event in preflights.items():
        assert event.get("Auth") == {"Authorizer": "NONE"}, f"the preflight of {path} must skip the authorizer"


def test_the_functions_read_the_allowed_origins_from_the_parameter() -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["TASKCAST_CORS_ALLOWED_ORIGINS"] == {"Ref": "CorsAllowedOrigins"}
    assert TEMPLATE["Parameters"]["CorsAllowedOrigins"]["Default"] == ""


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("https://app.example.com", True),
        ("https://app.example.com,http://127.0.0.1:8080", True),
        ("*", True),
        ("https://app.example.com/", False),
        ("https://app.example.com, https://b.example.com", False),
        ("app.example.com", False),
        ("https://app.example.com/path", False),
    ],
)
def test_the_parameter_accepts_origins_only(value: str, accepted: bool) -> None:
    pattern = TEMPLATE["Parameters"]["CorsAllowedOrigins"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted


def test_gateway_errors_name_the_first_allowed_origin() -> None:
    body = transformed_template({"CorsAllowedOrigins": "https://app.example.com"})["Resources"]["RestApi"]
    responses = body["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX"):
        header = responses[kind]["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
        assert header["Fn::If"][0] == "HasCorsOrigins"
        assert header["Fn::If"][2] == {"Ref": "AWS::NoValue"}
