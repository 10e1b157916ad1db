"""The gateways' own behaviour on a real local stack: API Gateway's answers, the dashboard files,
the request log, the WebSocket handshake and limits, and the ``@connections`` API through boto3."""

from __future__ import annotations

import json
import time

import pytest
import requests
from botocore.exceptions import ClientError
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from taskcast.local.testing import RunningStack
from tests.conftest import TENANTS
from tests.e2e.conftest import Api, receive_json

ACME = TENANTS["acme"]["api_key"]


# ---------------------------------------------------------------------------------------------- REST
def test_missing_key_answers_the_templates_401_problem(stack: RunningStack) -> None:
    answer = requests.get(f"{stack.http_url}/tasks/some-id", timeout=10)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["type"] == "https://taskcast.dev/problems/unauthorized"


def test_unknown_key_answers_the_templates_403_problem(stack: RunningStack) -> None:
    answer = requests.get(f"{stack.http_url}/tasks/some-id", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert answer.status_code == 403
    assert answer.json()["type"] == "https://taskcast.dev/problems/forbidden"


def test_unknown_path_is_404_and_unknown_method_is_403_both_as_problems(stack: RunningStack) -> None:
    missing = requests.get(f"{stack.http_url}/nowhere", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    wrong_method = requests.put(f"{stack.http_url}/tasks", headers={"Authorization": f"Bearer {ACME}"}, timeout=10)
    assert wrong_method.status_code == 403
    assert "POST" in wrong_method.json()["detail"]


def test_a_body_over_10_mb_answers_413_like_api_gateway(stack: RunningStack) -> None:
    answer = requests.post(f"{stack.http_url}/tasks", data=b"x" * (10 * 1024 * 1024 + 1),
                           headers={"Authorization": f"Bearer {ACME}"}, timeout=30)
    assert answer.status_code == 413
    assert answer.json() == {"message": "Request Too Long"}


def test_openapi_needs_no_key(stack: RunningStack) -> None:
    answer = requests.get(f"{stack.http_url}/openapi.json", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["openapi"].startswith("3.")


def test_the_dashboard_and_its_generated_config_are_served(stack: RunningStack) -> None:
    index = requests.get(f"{stack.http_url}/", timeout=10)
    assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
    config = requests.get(f"{stack.http_url}/dashboard/config.js", timeout=10)
    assert config.status_code == 200
    prefix = "window.TASKCAST_CONFIG = "
    assert config.text.startswith(prefix)
    values = json.loads(config.text.removeprefix(prefix).strip().rstrip(";"))
    # Tenants came from TASKCAST_TENANTS, so no key is handed to the page.
    assert values == {"websocketUrl": stack.ws_url, "apiKey": None}


def test_the_browser_client_and_its_types_are_served_without_a_key(stack: RunningStack) -> None:
    module = requests.get(f"{stack.http_url}/taskcast.js", timeout=10)
    assert module.status_code == 200 and module.headers["Content-Type"].startswith("text/javascript")
    assert "export class Taskcast" in module.text
    assert module.headers["Access-Control-Allow-Origin"] == "*"  # importable by a page of any origin
    assert module.content == requests.get(f"{stack.http_url}/dashboard/taskcast.js", timeout=10).content
    types = requests.get(f"{stack.http_url}/taskcast.d.ts", timeout=10)
    assert types.status_code == 200 and "export class Taskcast" in types.text


@pytest.mark.parametrize("name", ["../pyproject.toml", "%2e%2e/pyproject.toml", "__init__.py", "nothing.js"])
def test_only_dashboard_files_are_served(stack: RunningStack, name: str) -> None:
    assert requests.get(f"{stack.http_url}/dashboard/{name}", timeout=10).status_code == 404


def test_the_request_log_records_method_path_status_and_resource(stack: RunningStack, api: Api) -> None:
    task = api.create("sleep", {"seconds": 0, "steps": 1})
    api.get(f"/tasks/{task['id']}")
    log = stack.request_log
    mine = [entry for entry in log if task["id"] in entry["path"] or entry["request_id"] and entry["path"] == "/tasks"]
    assert {"method": "GET", "path": f"/tasks/{task['id']}", "resource": "/tasks/{id}"}.items() <= mine[-1].items()
    assert any(entry["method"] == "POST" and entry["status"] == 202 and entry["resource"] == "/tasks" for entry in log)
    assert all("Authorization" not in json.dumps(entry) for entry in log)


# ---------------------------------------------------------------------------------------------- WebSocket
@pytest.mark.parametrize(("query", "status"), [("", 401), ("?token=", 401), ("?token=wrong-key", 403)])
def test_a_bad_token_is_refused_at_the_handshake(stack: RunningStack, query: str, status: int) -> None:
    with pytest.raises(InvalidStatus) as refused, connect(f"{stack.ws_url}/{query}", open_timeout=15):
        pass
    assert refused.value.response.status_code == status


def test_a_message_over_128_kb_closes_the_connection_with_1009(stack: RunningStack, websocket) -> None:
    connection = websocket()
    connection.send(json.dumps({"action": "ping", "padding": "x" * 200_000}))
    with pytest.raises(ConnectionClosed) as closed:
        connection.recv(timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_binary_and_oversized_frames_get_an_error_and_the_connection_stays(stack: RunningStack, websocket) -> None:
    connection = websocket()
    connection.send(b"\x00\x01binary")
    assert receive_json(connection)["code"] == "unsupported_frame"
    connection.send(json.dumps({"action": "ping", "padding": "x" * 40_000}))  # one 40 KB frame
    too_large = receive_json(connection)
    assert (too_large["type"], too_large["code"]) == ("error", "frame_too_large")
    connection.send(json.dumps({"action": "ping"}))
    assert receive_json(connection)["type"] == "pong"


def test_a_fragmented_message_under_the_limits_is_one_message(stack: RunningStack, websocket) -> None:
    connection = websocket()
    text = json.dumps({"action": "ping", "padding": "y" * 20_000})
    connection.send([text[:10_000], text[10_000:]])  # two frames: the function gets the whole JSON
    assert receive_json(connection)["type"] == "pong"


# ---------------------------------------------------------------------------------------------- @connections
def _connection_ids(stack: RunningStack) -> set[str]:
    return set(requests.get(f"{stack.management_url}/@connections", timeout=10).json()["connections"])


def test_the_management_api_posts_describes_and_deletes_through_boto3(stack: RunningStack, websocket) -> None:
    before = _connection_ids(stack)
    connection = websocket()
    (connection_id,) = _connection_ids(stack) - before
    management = stack.client("apigatewaymanagementapi")

    management.post_to_connection(ConnectionId=connection_id, Data=b'{"hello": "from boto3"}')
    assert receive_json(connection) == {"hello": "from boto3"}

    described = management.get_connection(ConnectionId=connection_id)
    assert described["Identity"]["SourceIp"] == "127.0.0.1"
    assert described["ConnectedAt"] <= described["LastActiveAt"]

    management.delete_connection(ConnectionId=connection_id)
    with pytest.raises(ConnectionClosed):
        connection.recv(timeout=15)
    for call in (lambda: management.post_to_connection(ConnectionId=connection_id, Data=b"{}"),
                 lambda: management.get_connection(ConnectionId=connection_id)):
        with pytest.raises(ClientError) as gone:
            call()
        assert gone.value.response["Error"]["Code"] == "GoneException"
        assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


def test_an_unknown_connection_is_gone(stack: RunningStack) -> None:
    with pytest.raises(ClientError) as gone:
        stack.client("apigatewaymanagementapi").post_to_connection(ConnectionId="Tm9ub25leGlzdA=", Data=b"{}")
    assert gone.value.response["Error"]["Code"] == "GoneException"


def test_a_closed_connection_leaves_the_registry(stack: RunningStack) -> None:
    before = _connection_ids(stack)
    with connect(stack.websocket_url(ACME), open_timeout=15):
        assert len(_connection_ids(stack) - before) == 1
    deadline = time.monotonic() + 10
    while _connection_ids(stack) - before and time.monotonic() < deadline:
        time.sleep(0.05)  # the close handshake finishes on the gateway's side after ours
    assert not _connection_ids(stack) - before
