"""The WebSocket API's deployment carries a hash of what it deploys in its logical id.

CloudFormation creates an ``AWS::ApiGatewayV2::Deployment`` once and never again while its logical id
and properties stay the same, so a route, integration or authorizer edited later would never reach the
stage. SAM solves this for REST APIs by hashing the API into the deployment's id; the WebSocket API is
plain CloudFormation, so this module does the same: the id ends in a hash of every route, integration,
authorizer and route response of the API, a change there makes a new deployment, and the stage moves to it.

``python -m deploy.websocket_deployment`` rewrites template.yaml when the hash is stale (``--check``
only reports); ``tests/deploy/test_websocket_deployment.py`` fails while it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskcast.local.template import TEMPLATE_PATH, load_template

PREFIX = "WebSocketDeployment"
# What a deployment snapshots: changing any of these needs a new deployment.
DEPLOYED_TYPES = (
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::RouteResponse",
    "AWS::ApiGatewayV2::IntegrationResponse",
)
_ID = re.compile(rf"\b{PREFIX}[0-9a-f]*\b")


def deployment_hash(template: Mapping[str, Any]) -> str:
    """Ten hex digits of a hash over the deployed resources (logical id, type and properties)."""
    deployed = {
        logical_id: [resource["Type"], resource.get("Properties") or {}]
        for logical_id, resource in sorted((template.get("Resources") or {}).items())
        if resource.get("Type") in DEPLOYED_TYPES
    }
    return hashlib.sha256(json.dumps(deployed, sort_keys=True).encode()).hexdigest()[:10]


def expected_id(template: Mapping[str, Any]) -> str:
    return PREFIX + deployment_hash(template)


def deployment_ids(template: Mapping[str, Any]) -> list[str]:
    return [
        logical_id
        for logical_id, resource in (template.get("Resources") or {}).items()
        if resource.get("Type") == "AWS::ApiGatewayV2::Deployment"
    ]


def refreshed(text: str, template: Mapping[str, Any]) -> str:
    """``text`` (the template's source) with every mention of the deployment's id set to the expected one."""
    return _ID.sub(expected_id(template), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE_PATH)
    parser.add_argument("--check", action="store_true", help="only report whether the id is current")
    args = parser.parse_args(argv)
    template = load_template(args.template)
    current, wanted = deployment_ids(template), expected_id(template)
    if current == [wanted]:
        print(f"{args.template.name}: {wanted} is current")
        return 0
    if args.check:
        print(f"{args.template.name}: the WebSocket deployment should be {wanted}, found {current}", file=sys.stderr)
        return 1
    args.template.write_text(refreshed(args.template.read_text(), template))
    print(f"{args.template.name}: WebSocket deployment renamed to {wanted}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
