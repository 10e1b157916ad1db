"""The WebSocket API's deployment changes whenever what it deploys changes (its logical id carries a hash)."""

from __future__ import annotations

from pathlib import Path

from deploy.websocket_deployment import deployment_ids, expected_id, main
from taskcast.local.template import TEMPLATE_PATH, load_template

TEMPLATE = load_template(TEMPLATE_PATH)


def test_the_deployment_id_matches_the_routes_it_deploys() -> None:
    assert deployment_ids(TEMPLATE) == [expected_id(TEMPLATE)], "run: python -m deploy.websocket_deployment"


def test_the_stage_uses_that_deployment_after_every_route() -> None:
    (deployment,) = deployment_ids(TEMPLATE)
    assert TEMPLATE["Resources"]["WebSocketStage"]["Properties"]["DeploymentId"] == {"Ref": deployment}
    routes = {name for name, body in TEMPLATE["Resources"].items() if body["Type"] == "AWS::ApiGatewayV2::Route"}
    assert routes <= set(TEMPLATE["Resources"][deployment]["DependsOn"])


def test_editing_a_route_makes_a_new_deployment(tmp_path: Path) -> None:
    copy = tmp_path / "template.yaml"
    copy.write_text(TEMPLATE_PATH.read_text().replace("RouteKey: ping", "RouteKey: heartbeat"))
    before = expected_id(TEMPLATE)
    assert expected_id(load_template(copy)) != before
    assert main(["--template", str(copy), "--check"]) == 1
    assert main(["--template", str(copy)]) == 0
    rewritten = load_template(copy)
    assert deployment_ids(rewritten) == [expected_id(rewritten)]
    assert rewritten["Resources"]["WebSocketStage"]["Properties"]["DeploymentId"] == {"Ref": expected_id(rewritten)}


def test_changes_elsewhere_keep_the_deployment(tmp_path: Path) -> None:
    copy = tmp_path / "template.yaml"
    copy.write_text(TEMPLATE_PATH.read_text().replace("Default: prod", "Default: staging", 1))
    assert expected_id(load_template(copy)) == expected_id(TEMPLATE)
