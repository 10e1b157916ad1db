"""CORS: a page on an allowed origin may call the API and read its answers; any other origin may not.

The REST handler answers the preflight (the template routes OPTIONS past the authorizer) and puts the
CORS headers on every answer, including those made before the resolver (413) and after it (a long-poll).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from taskcast.api.cors import InvalidOrigin, check_origin
from taskcast.settings import Settings
from tests.functional.rest_harness import RestHarness

APP = "https://app.example.com"
OTHER_APP = "http://127.0.0.1:8123"
STRANGER = "https://evil.example.net"


@pytest.fixture
def api(dynamodb: None, settings: Settings) -> Iterator[RestHarness]:  # noqa: ARG001 - the table must exist
    with RestHarness(dataclasses.replace(settings, cors_allowed_origins=(APP, OTHER_APP))) as harness:
        yield harness


def _preflight(api: RestHarness, path: str, origin: str, method: str = "POST") -> object:
    headers = {"Origin": origin, "Access-Control-Request-Method": method,
               "Access-Control-Request-Headers": "authorization,content-type,idempotency-key"}
    return api.request("OPTIONS", path, tenant=None, headers=headers)


@pytest.mark.parametrize("origin", [APP, OTHER_APP])
@pytest.mark.parametrize("path", ["/tasks", "/tasks/abc", "/tasks/abc/result", "/uploads", "/ws-tickets"])
def test_a_preflight_from_an_allowed_origin_is_answered_without_credentials(
    api: RestHarness, path: str, origin: str
) -> None:
    reply = _preflight(api, path, origin)
    assert reply.status == 204, reply.text
    assert reply.header("Access-Control-Allow-Origin") == origin
    allowed_headers = {name.strip().lower() for name in reply.header("Access-Control-Allow-Headers").split(",")}
    assert {"authorization", "content-type", "idempotency-key", "prefer"} <= allowed_headers
    assert {"GET", "POST", "DELETE"} <= {m.strip() for m in reply.header("Access-Control-Allow-Methods").split(",")}
    assert reply.header("Vary") == "Origin"


def test_a_preflight_from_another_origin_gets_no_cors_headers(api: RestHarness) -> None:
    reply = _preflight(api, "/tasks", STRANGER)
    assert reply.header("Access-Control-Allow-Origin") is None
    assert reply.header("Access-Control-Allow-Headers") is None


def test_answers_name_the_allowed_origin_and_expose_the_headers_a_client_reads(api: RestHarness) -> None:
    created = api.create("sleep", {"seconds": 0}, headers={"Origin": APP})
    assert created.status == 202
    assert created.header("Access-Control-Allow-Origin") == APP
    exposed = {name.strip() for name in created.header("Access-Control-Expose-Headers").split(",")}
    assert {"Location", "Retry-After"} <= exposed
    task_id = created.json()["id"]
    held = api.request("GET", f"/tasks/{task_id}", query={"wait": "1"}, headers={"Origin": OTHER_APP})
    assert held.header("Access-Control-Allow-Origin") == OTHER_APP
    stranger = api.request("GET", f"/tasks/{task_id}", headers={"Origin": STRANGER})
    assert stranger.status in {200, 303}
    assert stranger.header("Access-Control-Allow-Origin") is None


def test_refusals_made_before_routing_carry_the_headers_too(api: RestHarness) -> None:
    too_big = "x" * (api.settings.inline_limit_bytes + 1)
    reply = api.request("POST", "/tasks", body=f'"{too_big}"', headers={"Origin": APP})
    assert reply.status == 413
    assert reply.header("Access-Control-Allow-Origin") == APP


def test_a_preflight_never_stands_in_for_authentication(api: RestHarness) -> None:
    """OPTIONS skips the authorizer; any other method without a tenant is still refused."""
    reply = api.request("GET", "/tasks/abc", tenant=None, headers={"Origin": APP})
    assert reply.status == 401
    assert reply.header("Access-Control-Allow-Origin") == APP  # so the page can show why


def test_without_allowed_origins_no_cors_headers_are_sent(dynamodb: None, settings: Settings) -> None:  # noqa: ARG001
    with RestHarness(settings) as plain:
        reply = plain.create("sleep", {"seconds": 0}, headers={"Origin": APP})
        assert reply.status == 202
        assert reply.header("Access-Control-Allow-Origin") is None
        assert reply.header("Vary") is None
        preflight = _preflight(plain, "/tasks", APP)
        assert preflight.header("Access-Control-Allow-Origin") is None
        assert preflight.status < 500


@pytest.mark.parametrize("origin", ["https://app.example.com/", "app.example.com", "ftp://x.example", "https://a/b"])
def test_origins_are_checked(origin: str) -> None:
    with pytest.raises(InvalidOrigin):
        check_origin(origin)


def test_settings_read_the_origins_from_the_environment() -> None:
    settings = Settings.from_env({"TASKCAST_CORS_ALLOWED_ORIGINS": f"{APP}, {OTHER_APP}"})
    assert settings.cors_allowed_origins == (APP, OTHER_APP)
