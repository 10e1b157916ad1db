"""How the local stack is configured: settings from the environment, the functions' environment, the
generated dev tenant, checkpoints."""

from __future__ import annotations

from pathlib import Path

from standardwebhooks import Webhook

from taskcast.local.checkpoints import CheckpointStore
from taskcast.local.services import aws_environment
from taskcast.local.stack import LocalConfig, function_environment, generate_dev_tenant
from taskcast.tenants import parse_tenants


def test_settings_come_from_the_documented_variables() -> None:
    config = LocalConfig.from_env({
        "TASKCAST_HTTP_PORT": "4000", "TASKCAST_WS_PORT": "0", "TASKCAST_MGMT_PORT": "4002",
        "TASKCAST_TENANTS": '{"a": {"api_key": "k"}}', "TASKCAST_ALLOW_LOOPBACK_CALLBACKS": "0",
        "TASKCAST_LOCAL_WS_IDLE_TIMEOUT": "5", "TASKCAST_LOCAL_WS_MAX_FRAME": "1024",
        "TASKCAST_LOCAL_STREAM_POLL_MS": "10", "TASKCAST_LOCAL_ASYNC_RETRY_DELAYS": "0.1,0.2",
    })
    assert (config.http_port, config.ws_port, config.mgmt_port) == (4000, 0, 4002)
    assert config.tenants_json == '{"a": {"api_key": "k"}}' and not config.allow_loopback_callbacks
    assert config.ws_limits.idle_timeout_s == 5 and config.ws_limits.max_frame_bytes == 1024
    assert config.ws_limits.max_message_bytes == 128 * 1024 and config.ws_limits.max_duration_s == 7200
    assert config.stream_poll_interval_ms == 10 and config.async_retry_delays_s == (0.1, 0.2)
    defaults = LocalConfig.from_env({})
    assert (defaults.http_port, defaults.ws_port, defaults.mgmt_port) == (3000, 3001, 3002)
    assert defaults.tenants_json is None and defaults.allow_loopback_callbacks
    assert defaults.integration_timeout_s == 29 and defaults.max_payload_bytes == 10 * 1024 * 1024


def test_the_functions_environment_layers_template_local_outer_and_explicit_values() -> None:
    environment = function_environment(
        template_environment={"TASKS_TABLE": "taskcast-tasks", "TASKCAST_WEBHOOK_TIMEOUT": "15",
                              "TASKCAST_WEBSOCKET_URL": "wss://x.execute-api.us-east-1.amazonaws.com/prod"},
        local={"TASKCAST_WEBSOCKET_URL": "ws://127.0.0.1:3001"},
        outer={"TASKCAST_WEBHOOK_TIMEOUT": "2", "TASKCAST_WEBSOCKET_URL": "ws://elsewhere", "TASKS_TABLE": "mine",
               "POWERTOOLS_LOG_LEVEL": "DEBUG", "TASKCAST_LOCAL_WS_MAX_FRAME": "1", "HOME": "/root"},
        explicit={"TASKCAST_RETRY_AFTER": "1"},
    )
    assert environment == {
        "TASKS_TABLE": "taskcast-tasks",  # the template names the tables, whatever the shell says
        "TASKCAST_WEBHOOK_TIMEOUT": "2",  # a TASKCAST_ setting of the shell wins
        "TASKCAST_WEBSOCKET_URL": "ws://127.0.0.1:3001",  # the local gateway, always
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "TASKCAST_RETRY_AFTER": "1",
    }


def test_the_generated_dev_tenant_is_usable_by_the_tenant_directory_and_standardwebhooks() -> None:
    tenants = generate_dev_tenant()
    (tenant,) = parse_tenants(__import__("json").dumps(tenants)).values()
    assert tenant.api_key.startswith("tc_dev_") and len(tenant.api_key) > 30
    Webhook(tenant.webhook_secret)  # accepted as a Standard Webhooks secret
    assert generate_dev_tenant() != tenants


def test_every_aws_service_points_at_the_local_endpoints() -> None:
    env = aws_environment("http://127.0.0.1:5000", lambda_url="http://127.0.0.1:6000",
                          management_url="http://127.0.0.1:3002")
    assert env["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:5000"
    assert env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == env["AWS_ENDPOINT_URL_SQS"] == "http://127.0.0.1:5000"
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == "http://127.0.0.1:6000"
    assert env["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] == "http://127.0.0.1:3002"
    assert env["AWS_ACCESS_KEY_ID"] == "testing"


def test_checkpoints_survive_a_restart_and_never_move_backwards(tmp_path: Path) -> None:
    path = tmp_path / "positions.json"
    store = CheckpointStore(path)
    store.put("arn:stream", "shard-1", "105")
    store.put("arn:stream", "shard-1", "103")
    assert CheckpointStore(path).get("arn:stream", "shard-1") == "105"
    assert CheckpointStore(path).get("arn:stream", "shard-2") is None
    path.write_text("{not json")
    assert CheckpointStore(path).get("arn:stream", "shard-1") is None
