"""Test copies of template.yaml: the project's template with changes, written as YAML in long-form
intrinsics (``Ref:``, ``Fn::GetAtt:``, ``Fn::Sub:``), which CloudFormation reads as it reads the tags."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from taskcast.local.template import TEMPLATE_PATH, load_template

SUPPORT_DIR = Path(__file__).resolve().parent
_CODE_PROPERTIES = ("CodeUri", "ContentUri")


def write_template(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The project's template, changed, written to ``path``; its code folders stay the project's own
    (``sam build`` reads a relative ``CodeUri`` from the template's folder, so they are made absolute)."""
    template = copy.deepcopy(load_template())
    change(template)
    _anchor_code_paths(template, TEMPLATE_PATH.parent)
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


def _anchor_code_paths(template: dict[str, Any], root: Path) -> None:
    holders = [(template.get("Globals") or {}).get("Function") or {}]
    holders += [resource.get("Properties") or {} for resource in (template.get("Resources") or {}).values()]
    for properties in holders:
        for name in _CODE_PROPERTIES:
            value = properties.get(name)
            if isinstance(value, str) and not Path(value).is_absolute():
                properties[name] = str((root / value).resolve())


def _function(handler: str, **properties: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Handler": handler,
            "CodeUri": str(SUPPORT_DIR),
            "Environment": {"Variables": {"PROBE_TABLE": {"Ref": "ProbeTable"},
                                          "PROBE_QUEUE_URL": {"Ref": "ProbeQueue"}}},
            **properties,
        },
    }


def _route(path: str, method: str = "GET", auth: bool = True) -> dict[str, Any]:
    properties: dict[str, Any] = {"RestApiId": {"Ref": "RestApi"}, "Path": path, "Method": method}
    if not auth:
        properties["Auth"] = {"Authorizer": "NONE"}
    return {"Type": "Api", "Properties": properties}


def add_machinery_probes(template: dict[str, Any]) -> None:
    """Adds tables, queues, routes and functions that exercise the local stack's machinery."""
    resources = template["Resources"]
    resources["ProbeTable"] = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        },
    }
    resources["SourceTable"] = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
        },
    }
    resources["ProbeQueue"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"VisibilityTimeout": 1, "RedrivePolicy": {
            "deadLetterTargetArn": {"Fn::GetAtt": ["ProbeDeadLetterQueue", "Arn"]}, "maxReceiveCount": 2}},
    }
    resources["ProbeDeadLetterQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    resources["ProbeFailureQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    resources["EchoFunction"] = _function(
        "dummy_functions.echo",
        Timeout=7,
        Events={"Open": _route("/echo/{proxy+}", "ANY", auth=False), "Guarded": _route("/guarded/{item}")},
    )
    resources["SlowFunction"] = _function("dummy_functions.slow", Timeout=20,
                                          Events={"Slow": _route("/slow", auth=False)})
    resources["BrokenFunction"] = _function("dummy_functions.broken_proxy_answer",
                                            Events={"Broken": _route("/broken", auth=False)})
    resources["ProbeStreamFunction"] = _function(
        "dummy_functions.stream_consumer",
        Events={"Changes": {"Type": "DynamoDB", "Properties": {
            "Stream": {"Fn::GetAtt": ["SourceTable", "StreamArn"]},
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": 10,
            "MaximumRetryAttempts": 1,
            "BisectBatchOnFunctionError": True,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "DestinationConfig": {"OnFailure": {"Type": "SQS",
                                                "Destination": {"Fn::GetAtt": ["ProbeFailureQueue", "Arn"]}}},
            "FilterCriteria": {"Filters": [{"Pattern": '{"eventName": ["INSERT", "MODIFY"]}'}]},
        }}},
    )
    resources["ProbeQueueFunction"] = _function(
        "dummy_functions.queue_consumer",
        Events={"Messages": {"Type": "SQS", "Properties": {
            "Queue": {"Fn::GetAtt": ["ProbeQueue", "Arn"]}, "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"]}}},
    )
    resources["AsyncTargetFunction"] = _function(
        "dummy_functions.async_target",
        Timeout=1,
        EventInvokeConfig={"MaximumRetryAttempts": 1, "DestinationConfig": {
            "OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["ProbeFailureQueue", "Arn"]}}}},
    )


def shorten_worker_timeout(template: dict[str, Any], seconds: int = 2) -> None:
    template["Resources"]["WorkerFunction"]["Properties"]["Timeout"] = seconds


def shorten_reauthorize(template: dict[str, Any], seconds: int = 2) -> None:
    """API Gateway's authorizer-result cache (``ReauthorizeEvery``) cut to ``seconds``."""
    authorizer = template["Resources"]["RestApi"]["Properties"]["Auth"]["Authorizers"]["TenantAuthorizer"]
    authorizer["Identity"]["ReauthorizeEvery"] = seconds
