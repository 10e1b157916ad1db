"""``LocalStack`` in the calling process with the handlers imported from the source tree
(``--from-source``), on a minimal template of its own: it serves the template's route through its
implicit API, and puts the process environment back when it stops."""

from __future__ import annotations

import os
from pathlib import Path

import requests
import yaml

from taskcast.local.stack import LocalConfig, LocalStack

TEMPLATE = {
    "Transform": "AWS::Serverless-2016-10-31",
    "Globals": {"Function": {"Timeout": 5, "Environment": {"Variables": {"PROBE_TABLE": {"Ref": "ProbeTable"}}}}},
    "Resources": {
        "ProbeTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        }},
        "EchoFunction": {"Type": "AWS::Serverless::Function", "Properties": {
            "Handler": "tests.e2e.support.dummy_functions.echo",
            "Events": {"Echo": {"Type": "Api", "Properties": {"Path": "/echo/{proxy+}", "Method": "GET"}}},
        }},
    },
}


def test_an_in_process_stack_serves_its_template_and_restores_the_environment(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(yaml.safe_dump(TEMPLATE))
    names = ("AWS_ENDPOINT_URL", "PROBE_TABLE", "TASKCAST_TENANTS", "POWERTOOLS_METRICS_DISABLED")
    before = {key: os.environ.get(key) for key in names}
    config = LocalConfig(template_path=template, http_port=0, ws_port=0, mgmt_port=0, s3_port=0, stack_name="probe",
                         from_source=True)

    with LocalStack(config) as stack:
        assert os.environ["PROBE_TABLE"] == "probe-probe"
        # No EMF lines on the console unless the shell asked for them.
        assert os.environ["POWERTOOLS_METRICS_DISABLED"] == (before["POWERTOOLS_METRICS_DISABLED"] or "true")
        answer = requests.get(f"{stack.http_url}/echo/hello", timeout=15)
        assert answer.status_code == 200
        assert answer.json()["event"]["pathParameters"] == {"proxy": "hello"}
        assert answer.json()["event"]["requestContext"]["stage"] == "Prod"  # SAM's implicit API stage
        assert stack.http_gateway.request_log[-1]["status"] == 200
        assert stack.describe()["resources"]["tables"] == {"ProbeTable": "probe-probe"}

    assert {key: os.environ.get(key) for key in before} == before
