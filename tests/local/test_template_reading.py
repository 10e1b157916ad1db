"""Reading template.yaml the way the local stack does: intrinsics, names, functions, routes, mappings."""

from __future__ import annotations

import pytest

from taskcast.local.event_sources import event_source_mappings
from taskcast.local.functions import FunctionRegistry, function_specs, merged_environment
from taskcast.local.resolve import TemplateError, TemplateResolver, kebab
from taskcast.local.rest_api import rest_apis
from taskcast.local.template import load_template
from taskcast.local.websocket_api import CONNECT, websocket_apis


@pytest.fixture(scope="module")
def resolver() -> TemplateResolver:
    return TemplateResolver(load_template())


def test_local_names_drop_the_type_suffix_and_match_the_settings_defaults(resolver: TemplateResolver) -> None:
    assert resolver.physical_name("TasksTable") == "taskcast-tasks"
    assert resolver.physical_name("SubscriptionsTable") == "taskcast-subscriptions"
    assert resolver.physical_name("WorkerFunction") == "taskcast-worker"
    assert resolver.physical_name("PayloadsBucket") == "taskcast-payloads"
    assert resolver.physical_name("WebhookDeadLetterQueue") == "taskcast-webhook-dead-letter"
    assert kebab("RestAPIFunction") == "rest-api-function"


def test_ref_and_getatt_answer_what_cloudformation_would(resolver: TemplateResolver) -> None:
    assert resolver.resolve({"Ref": "AWS::Region"}) == "us-east-1"
    assert resolver.resolve({"Ref": "StageName"}) == "prod"
    assert resolver.resolve({"Ref": "TenantsSecretArn"}) == ""  # no default: empty locally
    assert resolver.resolve({"Fn::GetAtt": ["WorkerFunction", "Arn"]}) == (
        "arn:aws:lambda:us-east-1:123456789012:function:taskcast-worker"
    )
    assert resolver.resolve({"Fn::GetAtt": ["WebhookRetryQueue", "QueueName"]}) == "taskcast-webhook-retry"
    assert resolver.resolve({"Fn::GetAtt": ["WebhookRetryQueue", "Arn"]}).endswith(":taskcast-webhook-retry")


def test_recorded_attributes_win_once_resources_exist() -> None:
    resolver = TemplateResolver(load_template())
    resolver.set_attribute("WebhookRetryQueue", "QueueUrl", "http://127.0.0.1:5000/123456789012/taskcast-webhook-retry")
    resolver.set_attribute("TasksTable", "StreamArn", "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024")
    assert resolver.resolve({"Ref": "WebhookRetryQueue"}).startswith("http://127.0.0.1:5000/")
    assert resolver.resolve({"Fn::GetAtt": ["TasksTable", "StreamArn"]}).endswith("/stream/2024")


def test_sub_resolves_pseudo_parameters_attributes_literals_and_variables(resolver: TemplateResolver) -> None:
    text = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${WorkerFunction}/${!Keep}"
    expected = "arn:aws:lambda:us-east-1:123456789012:function:taskcast-worker/${Keep}"
    assert resolver.resolve({"Fn::Sub": text}) == expected
    assert resolver.resolve({"Fn::Sub": "${WorkerFunction.Arn}"}).endswith(":function:taskcast-worker")
    with_variables = {"Fn::Sub": ["${Name}-${AWS::StackName}", {"Name": {"Ref": "StageName"}}]}
    assert resolver.resolve(with_variables) == "prod-taskcast"


def test_join_select_split_and_conditions() -> None:
    template = {
        "Parameters": {"Env": {"Type": "String", "Default": "dev"}},
        "Conditions": {"IsDev": {"Fn::Equals": [{"Ref": "Env"}, "dev"]},
                       "NotDev": {"Fn::Not": [{"Condition": "IsDev"}]}},
        "Resources": {},
    }
    resolver = TemplateResolver(template)
    assert resolver.resolve({"Fn::Join": ["-", ["a", {"Ref": "Env"}]]}) == "a-dev"
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}) == "y"
    assert resolver.resolve({"Fn::If": ["IsDev", "yes", "no"]}) == "yes"
    assert TemplateResolver(template, parameters={"Env": "prod"}).resolve({"Fn::If": ["NotDev", "yes", "no"]}) == "yes"
    assert resolver.resolve(["a", {"Ref": "AWS::NoValue"}]) == ["a"]


def test_unknown_references_are_clear_errors(resolver: TemplateResolver) -> None:
    with pytest.raises(TemplateError, match="Nope"):
        resolver.resolve({"Ref": "Nope"})
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        resolver.resolve({"Fn::ImportValue": "x"})


def test_functions_get_globals_and_their_own_settings(resolver: TemplateResolver) -> None:
    functions = {function.logical_id: function for function in function_specs(resolver)}
    assert set(functions) == {
        "RestAuthorizerFunction", "RestFunction", "WorkerFunction", "LargeWorkerFunction", "WorkerFailureFunction",
        "WebSocketAuthorizerFunction", "WebSocketFunction", "StreamConsumerFunction", "WebhookRetryFunction",
        "UploadArrivedFunction",
    }
    worker = functions["WorkerFunction"]
    assert (worker.handler_path, worker.timeout_s, worker.memory_mb) == ("handlers.worker.lambda_handler", 900, 1024)
    assert worker.event_invoke_config["MaximumRetryAttempts"] == 0
    assert functions["RestFunction"].environment["WORKER_FUNCTION"] == "taskcast-worker"
    assert functions["RestFunction"].environment["LARGE_WORKER_FUNCTION"] == "taskcast-large-worker"
    assert functions["UploadArrivedFunction"].environment["LARGE_WORKER_FUNCTION"] == "taskcast-large-worker"
    large = functions["LargeWorkerFunction"]
    assert (large.handler_path, large.timeout_s, large.memory_mb) == ("handlers.worker.lambda_handler", 900, 4096)
    assert functions["RestFunction"].environment["TASKS_TABLE"] == "taskcast-tasks"
    assert functions["StreamConsumerFunction"].timeout_s == 60 and functions["WebSocketFunction"].timeout_s == 30
    environment, conflicts = merged_environment(list(functions.values()))
    assert conflicts == [] and environment["POWERTOOLS_SERVICE_NAME"] == "taskcast"


WEBHOOK_ENDPOINT_PATHS = (
    "/webhook-endpoints", "/webhook-endpoints/{id}", "/webhook-endpoints/{id}/rotate-secret",
    "/webhook-endpoints/{id}/deliveries", "/webhook-endpoints/{id}/replay",
    "/webhook-endpoints/{id}/deliveries/{delivery}/resend", "/webhook-endpoints/{id}/test",
)


def test_rest_routes_and_authorizers_come_from_the_api_events(resolver: TemplateResolver) -> None:
    functions = FunctionRegistry(function_specs(resolver))
    (api,) = rest_apis(resolver, functions)
    routes = {(route.method, route.resource): route for route in api.routes}
    assert set(routes) == {
        ("POST", "/tasks"), ("GET", "/tasks/{id}"), ("DELETE", "/tasks/{id}"), ("GET", "/tasks/{id}/result"),
        ("GET", "/tasks/{id}/events"), ("GET", "/tasks/{id}/deliveries"), ("POST", "/uploads"), ("POST", "/ws-tickets"),
        ("GET", "/openapi.json"), ("POST", "/task-tokens/{token}/{report}"),
        # CORS preflights, past the authorizer
        *(("OPTIONS", path) for path in ("/tasks", "/tasks/{id}", "/tasks/{id}/result", "/tasks/{id}/events",
                                         "/tasks/{id}/deliveries", "/uploads", "/ws-tickets",
                                         "/task-tokens/{token}/{report}", *WEBHOOK_ENDPOINT_PATHS)),
        # Registered webhook endpoints
        ("POST", "/webhook-endpoints"), ("GET", "/webhook-endpoints"), ("GET", "/webhook-endpoints/{id}"),
        ("PATCH", "/webhook-endpoints/{id}"), ("DELETE", "/webhook-endpoints/{id}"),
        ("POST", "/webhook-endpoints/{id}/rotate-secret"), ("GET", "/webhook-endpoints/{id}/deliveries"),
        ("POST", "/webhook-endpoints/{id}/replay"), ("POST", "/webhook-endpoints/{id}/deliveries/{delivery}/resend"),
        ("POST", "/webhook-endpoints/{id}/test"),
    }
    assert routes[("GET", "/openapi.json")].authorizer is None
    # External workers report with their task token alone: the function checks it, no authorizer runs.
    assert routes[("POST", "/task-tokens/{token}/{report}")].authorizer is None
    assert routes[("OPTIONS", "/tasks")].authorizer is None
    authorizer = routes[("POST", "/tasks")].authorizer
    assert authorizer is not None and authorizer.function.logical_id == "RestAuthorizerFunction"
    assert authorizer.payload_type == "REQUEST"
    assert (authorizer.identity_headers, authorizer.ttl_s) == (("Authorization",), 60)
    assert api.stage == "prod"
    assert set(api.gateway_responses) == {"UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX"}


def test_websocket_routes_integrations_and_the_connect_authorizer(resolver: TemplateResolver) -> None:
    functions = FunctionRegistry(function_specs(resolver))
    (api,) = websocket_apis(resolver, functions)
    assert set(api.routes) == {"$connect", "$disconnect", "$default", "subscribe", "unsubscribe", "ping"}
    assert {route.function.logical_id for route in api.routes.values()} == {"WebSocketFunction"}
    authorizer = api.routes[CONNECT].authorizer
    assert authorizer is not None and authorizer.function.logical_id == "WebSocketAuthorizerFunction"
    assert authorizer.identity_sources == ()  # ?ticket= or ?token=: the authorizer decides
    assert api.stage == "prod" and api.selection_expression == "$request.body.action"


def test_event_source_mappings_keep_the_templates_settings(resolver: TemplateResolver) -> None:
    resolver.set_attribute("TasksTable", "StreamArn", "arn:stream")
    functions = FunctionRegistry(function_specs(resolver))
    queue_urls = {resolver.arn(name): f"http://q/{name}" for name in ("WorkerFailureQueue", "WebhookRetryQueue")}
    streams, queues = event_source_mappings(resolver, functions, queue_urls)
    (stream,) = streams
    assert stream.stream_arn == "arn:stream" and stream.function.logical_id == "StreamConsumerFunction"
    assert (stream.batch_size, stream.max_retries, stream.bisect, stream.report_item_failures) == (100, 10, True, True)
    assert stream.on_failure == resolver.arn("StreamFailureQueue")
    assert stream.filters == [{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"sk": {"S": ["STATE"]}}}}]
    assert {(queue.function.logical_id, queue.queue_url, queue.report_item_failures) for queue in queues} == {
        ("WorkerFailureFunction", "http://q/WorkerFailureQueue", True),
        ("WebhookRetryFunction", "http://q/WebhookRetryQueue", True),
    }


def test_reserved_concurrency_defaults_leave_the_account_room_and_minus_one_reserves_nothing() -> None:
    reserved = {
        spec.logical_id: spec.reserved_concurrency
        for spec in function_specs(TemplateResolver(load_template()))
        if spec.reserved_concurrency is not None
    }
    assert reserved == {"WorkerFunction": 400, "StreamConsumerFunction": 40}  # REST: unreserved, no cap
    # Lambda keeps 100 of a new account's 1,000 unreserved; the rest of the functions share what is left.
    assert sum(reserved.values()) <= 900 - 100
    none = {"WorkerConcurrency": "-1", "PushConcurrency": "-1", "RestConcurrency": "-1"}
    specs = function_specs(TemplateResolver(load_template(), parameters=none))
    assert [spec.logical_id for spec in specs if spec.reserved_concurrency is not None] == []
