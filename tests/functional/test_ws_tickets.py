"""WebSocket tickets: ``POST /ws-tickets`` issues one; the ``$connect`` authorizer takes it once, for its
tenant only, before it expires; forged, reused, expired and other stacks' tickets are denied."""

from __future__ import annotations

import copy
import json
import logging
from datetime import datetime

import pytest

from handlers import authorizer
from handlers.authorizer import AuthorizerDeps
from taskcast.tenants import TenantDirectory, parse_tenants
from taskcast.ws_tickets import TicketStore, new_ticket, ticket_hash
from tests.conftest import TABLE_NAMES
from tests.functional.rest_harness import load_event

OTHER_STACK_TABLE = "other-stack-tasks"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def connect_event(**query: str) -> dict:
    event = copy.deepcopy(load_event("websocket-authorizer-connect.json"))
    event["queryStringParameters"] = dict(query)
    event["multiValueQueryStringParameters"] = {key: [value] for key, value in query.items()}
    return event


def effect(answer: dict) -> str:
    return answer["policyDocument"]["Statement"][0]["Effect"]


@pytest.fixture
def tickets(dynamodb) -> TicketStore:
    return TicketStore(TABLE_NAMES["TasksTable"], dynamodb)


@pytest.fixture
def deps(settings, tickets) -> AuthorizerDeps:
    return AuthorizerDeps(tenants=TenantDirectory.from_settings(settings), tickets=tickets)


@pytest.fixture(autouse=True)
def capture_everything(caplog):
    caplog.set_level(logging.DEBUG)


# ------------------------------------------------------------------ POST /ws-tickets


def test_a_ticket_is_issued_with_its_expiry_and_never_cached(api, tickets) -> None:
    reply = api.request("POST", "/ws-tickets")
    assert reply.status == 201, reply.text
    body = reply.json()
    assert set(body) == {"ticket", "expires_at"}
    assert body["ticket"].startswith("wst_") and len(body["ticket"]) == 47
    assert reply.header("Cache-Control") == "no-store"
    lifetime = datetime.fromisoformat(body["expires_at"]).timestamp() - datetime.now().timestamp()
    assert 55 < lifetime <= 61
    # Only the ticket's hash is stored, with the tenant and the TTL attribute.
    items = api.dynamodb.scan(TableName=TABLE_NAMES["TasksTable"])["Items"]
    (item,) = [item for item in items if item["sk"]["S"] == "TICKET"]
    assert item["pk"]["S"] == f"ticket#{ticket_hash(body['ticket'])}"
    assert body["ticket"] not in str(item)
    assert item["tenant"]["S"] == "acme" and "expires_at" in item
    assert tickets.redeem(body["ticket"]) == "acme"


def test_the_lifetime_can_be_chosen_up_to_five_minutes(api) -> None:
    reply = api.request("POST", "/ws-tickets", json_body={"ttl_seconds": 300})
    assert reply.status == 201, reply.text
    lifetime = datetime.fromisoformat(reply.json()["expires_at"]).timestamp() - datetime.now().timestamp()
    assert 295 < lifetime <= 301


@pytest.mark.parametrize("body", [
    {"ttl_seconds": 0}, {"ttl_seconds": 301}, {"ttl_seconds": -5}, {"ttl_seconds": "60"}, {"ttl_seconds": 1.5},
    {"ttl_seconds": None}, {"tenant": "globex"}, [], "x",
])
def test_a_bad_lifetime_is_a_400_problem(api, body) -> None:
    reply = api.request("POST", "/ws-tickets", json_body=body)
    assert reply.status == 400, reply.text
    assert reply.header("Content-Type") == "application/problem+json"
    assert reply.json()["type"].endswith("/invalid-request")


def test_the_openapi_document_describes_the_route(api) -> None:
    document = api.request("GET", "/openapi.json", tenant=None).json()
    operation = document["paths"]["/ws-tickets"]["post"]
    assert {"201", "400"} <= set(operation["responses"])
    assert "?ticket=" in operation["description"]


# ------------------------------------------------------------------ the $connect authorizer


def test_a_ticket_opens_one_connection_for_its_tenant(api, deps, tenants, caplog, capsys) -> None:
    ticket = api.request("POST", "/ws-tickets", tenant="globex").json()["ticket"]
    answer = authorizer.websocket_handler(connect_event(ticket=ticket), None, deps)
    assert effect(answer) == "Allow" and answer["context"] == {"tenant": "globex"}
    # Used up: the second connect with the same ticket is denied.
    assert effect(authorizer.websocket_handler(connect_event(ticket=ticket), None, deps)) == "Deny"
    out, err = capsys.readouterr()
    assert ticket not in caplog.text + out + err


def test_a_ticket_wins_over_a_token_and_a_bad_ticket_is_not_saved_by_a_good_token(deps, tenants) -> None:
    event = connect_event(ticket=new_ticket(), token=tenants["acme"]["api_key"])
    assert effect(authorizer.websocket_handler(event, None, deps)) == "Deny"


@pytest.mark.parametrize("forged", ["wst_" + "A" * 43, "not-a-ticket", "wst_short", "x" * 5000])
def test_a_forged_ticket_is_denied(deps, forged) -> None:
    assert effect(authorizer.websocket_handler(connect_event(ticket=forged), None, deps)) == "Deny"


def test_an_expired_ticket_is_denied_before_the_ttl_sweep(dynamodb, settings) -> None:
    clock = Clock()
    store = TicketStore(TABLE_NAMES["TasksTable"], dynamodb, clock=clock)
    deps = AuthorizerDeps(tenants=TenantDirectory.from_settings(settings), tickets=store)
    early, late = store.issue("acme", ttl_s=60), store.issue("acme", ttl_s=60)
    clock.now += 59.9
    assert effect(authorizer.websocket_handler(connect_event(ticket=early.ticket), None, deps)) == "Allow"
    clock.now += 0.1
    assert effect(authorizer.websocket_handler(connect_event(ticket=late.ticket), None, deps)) == "Deny"
    # The item is still in the table (TTL deletes lazily); the refusal did not depend on it being gone.
    items = dynamodb.scan(TableName=TABLE_NAMES["TasksTable"])["Items"]
    assert [item["pk"]["S"] for item in items] == [f"ticket#{ticket_hash(late.ticket)}"]


def test_another_stacks_ticket_is_denied(dynamodb, deps) -> None:
    table = copy.deepcopy(dynamodb.describe_table(TableName=TABLE_NAMES["TasksTable"])["Table"])
    dynamodb.create_table(
        TableName=OTHER_STACK_TABLE, KeySchema=table["KeySchema"], AttributeDefinitions=table["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
    )
    foreign = TicketStore(OTHER_STACK_TABLE, dynamodb).issue("acme")
    assert effect(authorizer.websocket_handler(connect_event(ticket=foreign.ticket), None, deps)) == "Deny"


def test_a_ticket_of_a_tenant_removed_since_is_denied(tenants, tickets) -> None:
    issued = tickets.issue("globex")
    without_globex = TenantDirectory(parse_tenants(json.dumps({"acme": tenants["acme"]})))
    deps = AuthorizerDeps(tenants=without_globex, tickets=tickets)
    assert effect(authorizer.websocket_handler(connect_event(ticket=issued.ticket), None, deps)) == "Deny"


def test_the_token_still_works_and_nothing_at_all_is_unauthorized(deps, tenants) -> None:
    answer = authorizer.websocket_handler(connect_event(token=tenants["acme"]["api_key"]), None, deps)
    assert effect(answer) == "Allow" and answer["context"] == {"tenant": "acme"}
    for event in (connect_event(), connect_event(ticket=""), connect_event(token="")):
        with pytest.raises(Exception, match="^Unauthorized$"):
            authorizer.websocket_handler(event, None, deps)
