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


def s3_grants(function: dict[str, Any], action: str) -> set[str]:
    """The object keys (``${PayloadsBucket}/...`` stripped) a function's inline statements grant ``action`` on."""
    keys = set()
    for policy in function["Properties"]["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if action in actions:
                keys |= {resource["Fn::Sub"].split("${PayloadsBucket}/", 1)[1] for resource in resources
                         if "Fn::Sub" in resource and "${PayloadsBucket}/" in resource["Fn::Sub"]}
    return keys


def test_the_rest_function_may_put_uploads_and_external_workers_results_but_not_the_lambda_workers() -> None:
    import fnmatch

    resources = load_template(TEMPLATE_PATH)["Resources"]
    # Presigned PUTs carry the REST role's rights: inputs (POST /uploads) and external workers' uploaded results
    # (POST /task-tokens/{token}/result-upload, results/{tenant}/{task_id}/{random}.json).
    assert s3_grants(resources["RestFunction"], "s3:PutObject") == {"uploads/*", "results/*/*/*.json"}
    # IAM's * spans "/" as fnmatch's does: the Lambda worker's results/{tenant}/{task_id}.json stays out of reach.
    assert not fnmatch.fnmatchcase("results/acme/0b0e9f5e.json", "results/*/*/*.json")
    assert fnmatch.fnmatchcase("results/acme/0b0e9f5e/AAAA.json", "results/*/*/*.json")
    assert s3_grants(resources["WorkerFunction"], "s3:PutObject") == {"results/*"}


def test_only_the_rest_and_delivery_functions_may_read_the_endpoint_secrets() -> None:
    resources = transformed_template()["Resources"]
    roles = {name: json.dumps(body["Properties"].get("Policies", [])) for name, body in resources.items()
             if body["Type"] == "AWS::IAM::Role"}
    readers = {name for name, policies in roles.items() if "EndpointSecretsTable" in policies}
    # The stream consumer matches endpoints' filters but never signs: it has no access to their secrets.
    assert readers == {"RestFunctionRole", "WebhookRetryFunctionRole"}
    assert "EndpointsTable" in roles["StreamConsumerFunctionRole"]
    # The delivery function reads the secrets and never writes them.
    delivery = json.loads(roles["WebhookRetryFunctionRole"])
    secret_actions = {
        action
        for policy in delivery
        for statement in policy["PolicyDocument"]["Statement"]
        if "EndpointSecretsTable" in json.dumps(statement["Resource"])
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    }
    writes = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem")
    assert "dynamodb:GetItem" in secret_actions and not secret_actions & set(writes)
