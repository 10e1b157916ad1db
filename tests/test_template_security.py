"""Security properties of the template as CloudFormation receives it (after the SAM transform)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskcast.local.template import TEMPLATE_PATH, load_template
from tests.support.sam_transform import transformed_template

LISTED = ",".join(
    f"arn:aws:lambda:eu-west-1:123456789012:function:{name}" for name in ("thumbnailer", "resizer:prod")
)


WORKER_ROLES = ["WorkerFunctionRole", "LargeWorkerFunctionRole"]


def invoke_statements(template: dict[str, Any], role_name: str) -> list[dict[str, Any]]:
    role = template["Resources"][role_name]["Properties"]
    found = []
    for policy in role["Policies"]:
        text = json.dumps(policy)
        if "lambda:InvokeFunction" in text:
            found.append(policy)
    return found


@pytest.mark.parametrize("role_name", WORKER_ROLES)
def test_the_worker_may_invoke_no_function_by_default(role_name: str) -> None:
    template = transformed_template()
    for policy in invoke_statements(template, role_name):
        # SAM keeps the Fn::If; with the default (empty) list its condition is false and it adds nothing.
        condition, _, otherwise = policy["Fn::If"]
        assert condition == "HasInvokableFunctions"
        assert otherwise == {"Ref": "AWS::NoValue"}
    assert template["Conditions"]["HasInvokableFunctions"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "InvokableFunctions"}, ""]}]
    }
    assert "function:*" not in json.dumps(template["Resources"][role_name])


@pytest.mark.parametrize("role_name", WORKER_ROLES)
def test_the_worker_may_invoke_exactly_the_listed_functions(role_name: str) -> None:
    (policy,) = invoke_statements(transformed_template({"InvokableFunctions": LISTED}), role_name)
    (statement,) = policy["Fn::If"][1]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == {"Fn::Split": [",", {"Ref": "InvokableFunctions"}]}


def test_every_function_is_told_the_list_and_the_rest_function_the_stacks_own() -> None:
    resources = transformed_template()["Resources"]
    functions = {name: body for name, body in resources.items() if body["Type"] == "AWS::Lambda::Function"}
    for body in functions.values():
        variables = body["Properties"]["Environment"]["Variables"]
        assert variables["TASKCAST_INVOKABLE_FUNCTIONS"] == {"Ref": "InvokableFunctions"}
    own = json.dumps(functions["RestFunction"]["Properties"]["Environment"]["Variables"]["TASKCAST_STACK_FUNCTIONS"])
    for name in functions:
        if name != "RestFunction":  # its own name comes from AWS_LAMBDA_FUNCTION_NAME
            assert f'"{name}"' in own, name


def test_the_rest_api_has_one_stage_and_it_is_throttled() -> None:
    resources = transformed_template()["Resources"]
    stages = [body for body in resources.values() if body["Type"] == "AWS::ApiGateway::Stage"]
    deployments = [body for body in resources.values() if body["Type"] == "AWS::ApiGateway::Deployment"]
    # A deployment with StageName creates that stage too: SAM's implicit, unthrottled "Stage".
    assert [body["Properties"].get("StageName") for body in deployments] == [None]
    assert all(body["Properties"]["StageName"] != "Stage" for body in stages)
    (stage,) = stages
    assert stage["Properties"]["StageName"] == {"Ref": "StageName"}
    assert stage["Properties"]["MethodSettings"] == [
        {"HttpMethod": "*", "ResourcePath": "/*", "ThrottlingBurstLimit": 200, "ThrottlingRateLimit": 100}
    ]


def test_only_the_openapi_document_preflights_and_task_token_reports_skip_the_authorizer() -> None:
    template = load_template(TEMPLATE_PATH)
    unauthorized = set()
    for resource in template["Resources"].values():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            properties = event.get("Properties") or {}
            if event.get("Type") == "Api" and properties.get("Auth") == {"Authorizer": "NONE"}:
                unauthorized.add((properties["Method"].upper(), properties["Path"]))
    assert {route for route in unauthorized if route[0] != "OPTIONS"} == {
        ("GET", "/openapi.json"),
        # An external worker's reports carry no API key: the task token in the path is checked by the function
        # (taskcast.api.routes_task_tokens), one token per task, refused once the task has ended.
        ("POST", "/task-tokens/{token}/{report}"),
    }
