"""Every client mistake answers a problem (``application/problem+json``), never a 500 or a stack trace."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.functional.rest_harness import RestHarness, proxy_event


def assert_problem(reply, status: int, kind: str) -> dict:
    assert reply.status == status, reply.text
    assert reply.header("Content-Type") == "application/problem+json"
    body = reply.json()
    assert body["type"] == f"https://taskcast.dev/problems/{kind}"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert "Traceback" not in reply.text
    return body


def test_bad_json_is_400(api: RestHarness) -> None:
    body = assert_problem(api.request("POST", "/tasks", body='{"type": "sleep",'), 400, "invalid-request")
    assert "not valid JSON" in body["detail"]


@pytest.mark.parametrize(
    "payload",
    [{"input": {}}, {"type": 5}, {"type": "sleep", "surprise": 1}, [1, 2], "just text"],
)
def test_body_that_does_not_fit_the_model_is_400(api: RestHarness, payload) -> None:
    body = assert_problem(api.request("POST", "/tasks", json_body=payload), 400, "invalid-request")
    assert body["errors"]


def test_body_over_the_inline_limit_is_413_naming_uploads(api: RestHarness) -> None:
    big = json.dumps({"type": "sleep", "input": {"blob": "x" * (300 * 1024)}})
    body = assert_problem(api.request("POST", "/tasks", body=big), 413, "payload-too-large")
    assert "POST /uploads" in body["detail"]
    assert api.invocations == []


def test_unknown_job_type_is_400(api: RestHarness) -> None:
    body = assert_problem(api.create("teleport", {}), 400, "unknown-job-type")
    assert "teleport" in body["detail"] and "sleep" in body["detail"]
    assert api.invocations == []


@pytest.mark.parametrize(
    "job_input", [{"seconds": -1}, {"seconds": "long"}, {}, {"seconds": 1, "steps": 0}, {"seconds": 10_000}]
)
def test_invalid_job_input_is_400(api: RestHarness, job_input) -> None:
    body = assert_problem(api.create("sleep", job_input), 400, "invalid-input")
    assert "input" in body["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "https://10.0.0.7/hook",
        "http://127.0.0.1:9000/hook",  # loopback is only allowed behind the local-stack setting
        "ftp://93.184.216.34/hook",
        "https://user:secret@93.184.216.34/hook",
    ],
)
def test_refused_callback_url_is_400_with_the_reason(api: RestHarness, url: str) -> None:
    reply = api.request("POST", "/tasks", json_body={"type": "sleep", "input": {"seconds": 0}, "callback_url": url})
    body = assert_problem(reply, 400, "callback-refused")
    assert "callback_url" in body["detail"]
    assert api.invocations == []


def test_public_callback_url_is_accepted(api: RestHarness) -> None:
    reply = api.request(
        "POST",
        "/tasks",
        json_body={"type": "sleep", "input": {"seconds": 0}, "callback_url": "https://93.184.216.34/hook"},
    )
    assert reply.status == 202
    assert api.store.get(reply.json()["id"]).callback_url == "https://93.184.216.34/hook"


def test_unknown_route_is_404_and_wrong_method_is_405(api: RestHarness) -> None:
    assert_problem(api.request("GET", "/nothing/here"), 404, "not-found")
    body = assert_problem(api.request("PUT", "/tasks/abc"), 405, "method-not-allowed")
    assert "DELETE" in body["detail"] and "GET" in body["detail"]
    reply = api.request("PATCH", "/tasks")
    assert_problem(reply, 405, "method-not-allowed")
    assert reply.header("Allow") == "POST"


def test_request_without_tenant_in_the_context_is_401(api: RestHarness) -> None:
    task_id = api.create("sleep", {"seconds": 0}).json()["id"]
    for method, path in [("POST", "/tasks"), ("GET", f"/tasks/{task_id}"), ("DELETE", f"/tasks/{task_id}")]:
        reply = api.request(method, path, tenant=None, json_body={"type": "sleep", "input": {"seconds": 0}})
        assert_problem(reply, 401, "unauthorized")


def test_another_tenants_task_is_404_on_every_route_like_an_unknown_id(api: RestHarness) -> None:
    task_id = api.create("sleep", {"seconds": 0}, headers={"Prefer": "wait=5"}).json()["id"]
    unknown_id = "00000000-0000-4000-8000-000000000000"
    for method, suffix in [
        ("GET", ""),
        ("GET", "/result"),
        ("GET", "/events"),
        ("GET", "/deliveries"),
        ("DELETE", ""),
    ]:
        foreign = api.request(method, f"/tasks/{task_id}{suffix}", tenant="globex")
        missing = api.request(method, f"/tasks/{unknown_id}{suffix}", tenant="globex")
        body = assert_problem(foreign, 404, "task-not-found")
        assert body == json.loads(missing.text.replace(unknown_id, task_id)), (method, suffix)
        assert foreign.headers == missing.headers
    # The owner still sees it, untouched by the refused DELETE.
    assert api.request("GET", f"/tasks/{task_id}").status == 303


def test_openapi_needs_no_tenant_and_describes_the_routes(api: RestHarness) -> None:
    reply = api.request("GET", "/openapi.json", tenant=None)
    assert reply.status == 200
    document = reply.json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/tasks",
        "/tasks/{task_id}",
        "/tasks/{task_id}/result",
        "/tasks/{task_id}/events",
        "/tasks/{task_id}/deliveries",
        "/uploads",
        "/ws-tickets",
        # External workers' reports, authenticated by their task token (no API key).
        "/task-tokens/{token}/progress",
        "/task-tokens/{token}/heartbeat",
        "/task-tokens/{token}/succeed",
        "/task-tokens/{token}/fail",
        "/task-tokens/{token}/result-upload",
        # Registered webhook endpoints.
        "/webhook-endpoints",
        "/webhook-endpoints/{endpoint_id}",
        "/webhook-endpoints/{endpoint_id}/rotate-secret",
        "/webhook-endpoints/{endpoint_id}/deliveries",
        "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend",
        "/webhook-endpoints/{endpoint_id}/replay",
        "/webhook-endpoints/{endpoint_id}/test",
    }
    assert "201" in document["paths"]["/uploads"]["post"]["responses"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}]
    create = document["paths"]["/tasks"]["post"]
    assert {"202", "400", "413", "422"} <= set(create["responses"])
    assert "HTTPValidationError" not in json.dumps(document)


def test_handler_event_shape_is_what_api_gateway_sends() -> None:
    event = proxy_event("GET", "/tasks/abc", query={"wait": "1"})
    assert event["resource"] == "/tasks/{id}"
    assert event["pathParameters"] == {"id": "abc"}
    assert event["requestContext"]["authorizer"]["tenant"] == "acme"


def test_handler_builds_its_own_deps_from_the_environment(dynamodb, settings) -> None:
    from handlers import rest
    from taskcast.api.deps import ApiDeps
    from tests.functional.rest_harness import FakeLambdaContext, Reply

    deps = ApiDeps.from_settings(settings)
    unknown = rest.lambda_handler(proxy_event("GET", "/tasks/nope"), FakeLambdaContext(), deps)
    assert Reply.from_proxy(unknown).status == 404
    document = rest.lambda_handler(proxy_event("GET", "/openapi.json", tenant=None), FakeLambdaContext(), deps)
    assert Reply.from_proxy(document).json()["info"]["title"] == "taskcast"


@pytest.mark.parametrize("body", ["[" * 100_000, '{"type": "sleep", "input": ' + "[" * 65 + "]" * 65 + "}"])
def test_json_nested_deeper_than_the_limit_is_400(api: RestHarness, body: str) -> None:
    reply = api.request("POST", "/tasks", body=body)
    problem_body = assert_problem(reply, 400, "nesting-limit-exceeded")
    assert "64" in problem_body["detail"]
    assert api.invocations == []


def test_json_nested_up_to_the_limit_is_read(api: RestHarness) -> None:
    # 64 levels in all: the body object and 63 arrays; brackets inside strings do not count.
    body = '{"type": "sleep", "input": ' + "[" * 63 + '"[[[["' + "]" * 63 + "}"
    body_json = assert_problem(api.request("POST", "/tasks", body=body), 400, "invalid-input")
    assert "sleep" in body_json["detail"]


@pytest.fixture
def invoke_api(dynamodb, settings):
    allowed = replace(
        settings,
        invokable_functions=("arn:aws:lambda:us-east-1:123456789012:function:thumbnailer", "app-RestFunction-1"),
        stack_functions=("app-RestFunction-1", "taskcast-worker"),
    )
    with RestHarness(allowed, start_workers=False) as harness:
        yield harness


@pytest.mark.parametrize(
    "function",
    [
        "resizer",  # not listed
        "arn:aws:lambda:us-east-1:123456789012:function:resizer",
        "app-RestFunction-1",  # the stack's own, although listed
        "taskcast-worker",
        "arn:aws:lambda:us-east-1:123456789012:function:taskcast-worker",
    ],
)
def test_invoke_of_a_function_the_deployment_does_not_allow_is_400(invoke_api: RestHarness, function: str) -> None:
    body = assert_problem(invoke_api.create("invoke", {"function": function}), 400, "function-not-invokable")
    assert function in body["detail"]
    assert invoke_api.invocations == []


@pytest.mark.parametrize("function", ["thumbnailer", "arn:aws:lambda:us-east-1:123456789012:function:thumbnailer"])
def test_invoke_of_a_listed_function_is_accepted(invoke_api: RestHarness, function: str) -> None:
    assert invoke_api.create("invoke", {"function": function}).status == 202


def test_invoke_is_refused_when_the_list_is_empty(api: RestHarness) -> None:
    assert_problem(api.create("invoke", {"function": "thumbnailer"}), 400, "function-not-invokable")
