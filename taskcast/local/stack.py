"""The whole local stack, composed from template.yaml: moto's services, the template's resources and
functions, the Lambda API, the HTTP and WebSocket gateways, ``@connections`` and the event sources.

    with LocalStack(LocalConfig(http_port=0, ws_port=0, mgmt_port=0)) as stack:
        print(stack.http_url, stack.ws_url, stack.management_url)

Functions run as Lambda runs them (``environments.py``): the stack builds the template's artifacts with
``sam build`` (``artifacts.py``, reused while nothing that goes into them changed) and starts each
function's execution environments as processes of their own, from its artifact, with only its own
environment. With ``from_source=True`` (``taskcast local --from-source``) the handlers are imported from
the source tree into this process instead: the stack then sets their merged environment in
``os.environ`` and puts the previous values back when it stops.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3

from taskcast import aws
from taskcast.local.async_invoke import AsyncInvoker, destination_sender
from taskcast.local.checkpoints import CheckpointStore
from taskcast.local.connections_api import ConnectionsApi
from taskcast.local.environments import DEFAULT_MAX_ENVIRONMENTS, EnvironmentPool, Launch
from taskcast.local.event_sources import QueuePoller, StreamPoller, event_source_mappings
from taskcast.local.functions import FunctionRegistry, function_specs, merged_environment
from taskcast.local.http_gateway import INTEGRATION_TIMEOUT_S, MAX_PAYLOAD_BYTES, HttpGateway
from taskcast.local.lambda_api import LambdaApi
from taskcast.local.resolve import DEFAULT_REGION, TemplateResolver
from taskcast.local.resources import CreatedResources, create_resources
from taskcast.local.rest_api import rest_apis
from taskcast.local.s3_front import S3Front
from taskcast.local.services import FAKE_CREDENTIALS, EnvironmentPatch, MotoService, aws_environment
from taskcast.local.template import TEMPLATE_PATH, load_template
from taskcast.local.websocket_api import WebSocketApi, websocket_apis
from taskcast.local.websocket_gateway import WebSocketGateway, WebSocketLimits
from taskcast.tenants import parse_tenants

log = logging.getLogger("taskcast.local")

# Variables of the stack's own environment that win over the template's values (the gateway URLs
# always name the local gateways).
PASS_THROUGH_PREFIXES = ("TASKCAST_", "POWERTOOLS_")
LOCAL_ONLY = {"TASKCAST_WEBSOCKET_URL", "TASKCAST_MANAGEMENT_URL", "TASKCAST_TENANTS_SECRET_ARN"}
DEV_TENANT = "dev"


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    return int(value) if value not in (None, "") else default


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name)
    return float(value) if value not in (None, "") else default


@dataclass(frozen=True)
class LocalConfig:
    """Everything the local stack can be told; ``from_env`` reads the documented variables."""

    template_path: Path = TEMPLATE_PATH
    stack_name: str = "taskcast"
    region: str = DEFAULT_REGION
    host: str = "127.0.0.1"
    http_port: int = 3000
    ws_port: int = 3001
    mgmt_port: int = 3002
    s3_port: int = 3003
    lambda_port: int = 0
    tenants_json: str | None = None  # None: one dev tenant is generated (and may be printed)
    parameters: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)  # wins over template and pass-through
    allow_loopback_callbacks: bool = True
    stream_poll_interval_ms: float = 50.0
    sqs_wait_s: int = 1
    sqs_concurrency: int = 2  # pollers per queue mapping without ScalingConfig.MaximumConcurrency
    # Pollers of a mapping with MaximumConcurrency (the webhook delivery queue): that many, up to this cap;
    # above the delivery's per-tenant cap (4), so that one tenant's held attempts never take every poller.
    sqs_max_concurrency: int = 6
    ws_limits: WebSocketLimits = field(default_factory=WebSocketLimits)
    integration_timeout_s: float = INTEGRATION_TIMEOUT_S
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    async_retry_delays_s: tuple[float, ...] = (1.0, 2.0)
    state_dir: Path | None = None  # where stream positions are kept; None: a temporary directory
    from_source: bool = False  # import handlers into this process instead of running built artifacts
    max_environments: int = DEFAULT_MAX_ENVIRONMENTS  # per function, unless it reserves concurrency
    function_python_path: tuple[str, ...] = ()  # extra folders on every function's path, after its layers

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LocalConfig:
        env = os.environ if environ is None else environ
        defaults = cls()
        limits = WebSocketLimits(
            max_message_bytes=_int(env, "TASKCAST_LOCAL_WS_MAX_MESSAGE", defaults.ws_limits.max_message_bytes),
            max_frame_bytes=_int(env, "TASKCAST_LOCAL_WS_MAX_FRAME", defaults.ws_limits.max_frame_bytes),
            idle_timeout_s=_float(env, "TASKCAST_LOCAL_WS_IDLE_TIMEOUT", defaults.ws_limits.idle_timeout_s),
            max_duration_s=_float(env, "TASKCAST_LOCAL_WS_MAX_DURATION", defaults.ws_limits.max_duration_s),
        )
        delays_text = env.get("TASKCAST_LOCAL_ASYNC_RETRY_DELAYS")
        delays = tuple(float(part) for part in delays_text.split(",")) if delays_text else defaults.async_retry_delays_s
        config = cls(
            template_path=Path(env.get("TASKCAST_LOCAL_TEMPLATE") or defaults.template_path),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or defaults.region,
            http_port=_int(env, "TASKCAST_HTTP_PORT", defaults.http_port),
            ws_port=_int(env, "TASKCAST_WS_PORT", defaults.ws_port),
            mgmt_port=_int(env, "TASKCAST_MGMT_PORT", defaults.mgmt_port),
            s3_port=_int(env, "TASKCAST_S3_PORT", defaults.s3_port),
            tenants_json=env.get("TASKCAST_TENANTS") or None,
            allow_loopback_callbacks=env.get("TASKCAST_ALLOW_LOOPBACK_CALLBACKS", "1").strip().lower()
            in {"1", "true", "yes", "on"},
            stream_poll_interval_ms=_float(env, "TASKCAST_LOCAL_STREAM_POLL_MS", defaults.stream_poll_interval_ms),
            sqs_concurrency=_int(env, "TASKCAST_LOCAL_SQS_CONCURRENCY", defaults.sqs_concurrency),
            sqs_max_concurrency=_int(env, "TASKCAST_LOCAL_SQS_MAX_CONCURRENCY", defaults.sqs_max_concurrency),
            ws_limits=limits,
            integration_timeout_s=_float(env, "TASKCAST_LOCAL_INTEGRATION_TIMEOUT", defaults.integration_timeout_s),
            max_payload_bytes=_int(env, "TASKCAST_LOCAL_MAX_PAYLOAD", defaults.max_payload_bytes),
            async_retry_delays_s=delays,
            state_dir=Path(env["TASKCAST_LOCAL_STATE_DIR"]) if env.get("TASKCAST_LOCAL_STATE_DIR") else None,
            from_source=env.get("TASKCAST_LOCAL_FROM_SOURCE", "").strip().lower() in {"1", "true", "yes", "on"},
            max_environments=_int(env, "TASKCAST_LOCAL_MAX_ENVIRONMENTS", defaults.max_environments),
            function_python_path=tuple(part for part in env.get("TASKCAST_LOCAL_FUNCTION_PYTHONPATH", "").split(
                os.pathsep) if part),
        )
        return replace(config, **overrides)


def generate_dev_tenant() -> dict[str, dict[str, str]]:
    """One tenant with a random API key and a Standard Webhooks secret (``whsec_`` + base64 of 32 bytes)."""
    return {
        DEV_TENANT: {
            "api_key": "tc_dev_" + secrets.token_urlsafe(24),
            "webhook_secret": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
        }
    }


def function_environment(
    template_environment: Mapping[str, str],
    local: Mapping[str, str],
    outer: Mapping[str, str],
    explicit: Mapping[str, str],
) -> dict[str, str]:
    """The functions' environment: the template's values, the local stack's replacements, then the
    ``TASKCAST_*`` / ``POWERTOOLS_*`` variables of the environment that started the stack, then
    ``explicit`` settings. The local gateway URLs are never overridden from outside."""
    environment = {**template_environment, **local}
    for key, value in outer.items():
        if key.startswith(PASS_THROUGH_PREFIXES) and key not in LOCAL_ONLY and not key.startswith("TASKCAST_LOCAL_"):
            environment[key] = value
    environment.update(explicit)
    return environment


class LocalStack:
    def __init__(self, config: LocalConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or LocalConfig.from_env(), **overrides)
        self.tenants: dict[str, dict[str, str]] = {}
        self.tenants_generated = False
        self.tenants_secret_arn = ""
        self.resolver: TemplateResolver | None = None
        self.resources = CreatedResources()
        self.functions = FunctionRegistry([])
        self.environment: dict[str, str] = {}
        self.moto = MotoService(self.config.host)
        self.s3_front: S3Front | None = None
        self.lambda_api: LambdaApi | None = None
        self.async_invoker: AsyncInvoker | None = None
        self.websocket_gateway: WebSocketGateway | None = None
        self.connections_api: ConnectionsApi | None = None
        self.http_gateway: HttpGateway | None = None
        self.pollers: list[StreamPoller | QueuePoller] = []
        self._stream_pollers: Callable[[], list[StreamPoller]] | None = None
        self._env = EnvironmentPatch()
        self._state_dir: tempfile.TemporaryDirectory[str] | None = None
        self.artifacts: Any = None  # BuiltArtifacts once built
        self.runtime_python: Path | None = None
        self._started = False

    # ------------------------------------------------------------------ URLs
    @property
    def http_url(self) -> str:
        return self._require(self.http_gateway).url

    @property
    def ws_url(self) -> str:
        return self._require(self.websocket_gateway).url

    @property
    def management_url(self) -> str:
        return self._require(self.connections_api).url

    @property
    def lambda_url(self) -> str:
        return self._require(self.lambda_api).url

    @property
    def moto_url(self) -> str:
        return self.moto.url

    @property
    def s3_url(self) -> str:
        return self._require(self.s3_front).url

    @staticmethod
    def _require(component: Any) -> Any:
        if component is None:
            raise RuntimeError("the local stack is not started")
        return component

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._started = True

    def _start(self) -> None:
        config = self.config
        template = load_template(config.template_path)
        self._load_tenants()
        self.moto.start()
        # moto's S3 takes any presigned request; the front checks them as S3 does (s3_front.py).
        credentials = {FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        self.s3_front = S3Front(self.moto.url, credentials, config.host, config.s3_port)
        self.s3_front.start()
        self._env.set(aws_environment(self.moto.url, s3_url=self.s3_url, region=config.region))
        aws.reset_clients()

        resolver = TemplateResolver(template, stack_name=config.stack_name, region=config.region,
                            parameters=dict(config.parameters))
        self.resolver = resolver
        self.resources = create_resources(resolver, self.client("dynamodb"), self.client("sqs"), self.client("s3"))
        self.tenants_secret_arn = self._create_tenants_secret()
        self.functions = FunctionRegistry(function_specs(resolver))
        if not config.from_source:
            self._prepare_artifacts()

        sqs = self.client("sqs")
        self.async_invoker = AsyncInvoker(
            self.functions,
            destination_sender(self.functions, sqs, lambda: self.async_invoker),
            retry_delays_s=config.async_retry_delays_s,
        )
        self.lambda_api = LambdaApi(self.functions, self.async_invoker, config.host, config.lambda_port,
                                    config.region, resolver.account_id)
        self.lambda_api.start()
        self.websocket_gateway = WebSocketGateway(
            self._websocket_api(resolver), host=config.host, port=config.ws_port, region=config.region,
            account_id=resolver.account_id, limits=config.ws_limits,
        )
        self.websocket_gateway.start()
        self.connections_api = ConnectionsApi(self.websocket_gateway, config.host, config.mgmt_port)
        self.connections_api.start()

        if config.from_source:
            self._set_function_environment()
            self._import_handlers()
        else:
            self._start_environment_pools()

        self.http_gateway = HttpGateway(
            rest_apis(resolver, self.functions),
            host=config.host,
            port=config.http_port,
            region=config.region,
            account_id=resolver.account_id,
            integration_timeout_s=config.integration_timeout_s,
            max_payload_bytes=config.max_payload_bytes,
            websocket_url=lambda: self.ws_url,
            dashboard_api_key=self.tenants[DEV_TENANT]["api_key"] if self.tenants_generated else None,
            debug_routes={
                ("GET", "/_local/stack"): self.describe,
                ("GET", "/_local/functions"): self.describe_functions,
                ("POST", "/_local/websocket/stop"): self._pause_websocket,
                ("POST", "/_local/websocket/start"): self._resume_websocket,
                ("POST", "/_local/streams/stop"): self.stop_stream_pollers,
                ("POST", "/_local/streams/start"): self.start_stream_pollers,
            },
        )
        self.http_gateway.start()
        self._start_pollers(resolver, sqs)

    def _load_tenants(self) -> None:
        if self.config.tenants_json:
            parse_tenants(self.config.tenants_json)  # a clear error now rather than 403s later
            self.tenants = json.loads(self.config.tenants_json)
            self.tenants_generated = False
        else:
            self.tenants = generate_dev_tenant()
            self.tenants_generated = True

    def _create_tenants_secret(self) -> str:
        """The tenants in a Secrets Manager secret, read by the functions as on AWS (``TenantsSecretArn``), so a
        key revoked with ``put_secret_value`` stops working once the functions' tenant cache expires."""
        secret = self.client("secretsmanager").create_secret(
            Name=f"{self.config.stack_name}-tenants", SecretString=json.dumps(self.tenants)
        )
        return str(secret["ARN"])

    def _websocket_api(self, resolver: TemplateResolver) -> WebSocketApi:
        apis = websocket_apis(resolver, self.functions)
        if len(apis) > 1:
            log.warning("the template declares %d WebSocket APIs; only %s is served", len(apis), apis[0].logical_id)
        return apis[0] if apis else WebSocketApi("none", "none", "$default")

    def _prepare_artifacts(self) -> None:
        """Build (or reuse) the artifacts ``sam build`` makes of the template, and the interpreter that holds
        only what Lambda's Python runtime provides."""
        from taskcast.local.artifacts import build_artifacts
        from taskcast.local.runtime_env import lambda_runtime_python

        self.artifacts = build_artifacts(self.config.template_path, dict(self.config.parameters), log=log.info)
        self.runtime_python = lambda_runtime_python()
        missing = [function.logical_id for function in self.functions
                   if function.logical_id not in self.artifacts.functions]
        if missing:
            raise RuntimeError(f"sam build made no artifact for {', '.join(missing)}")

    def _start_environment_pools(self) -> None:
        """Each function runs in execution environments of its own, started from its artifact."""
        extra = (*self.config.function_python_path,)
        for function in self.functions:
            artifact = self.artifacts.functions[function.logical_id]
            launch = Launch(python=self.runtime_python, code_dir=artifact.code_dir, layer_dirs=artifact.layer_dirs,
                            runtime=self.artifacts.runtime, extra_python_path=extra)
            variables = {**self._function_variables(function.environment),
                         **aws_environment(self.moto.url, s3_url=self.s3_url, lambda_url=self.lambda_url,
                                           management_url=self.management_url, region=self.config.region)}
            reserved = function.reserved_concurrency
            cap = self.config.max_environments if reserved is None else reserved
            function.runner = EnvironmentPool(function, launch, variables, self.config.region, cap)

    def _local_variables(self) -> dict[str, str]:
        """What the local stack puts in place of the template's values in every function's environment."""
        return {
            "TASKCAST_WEBSOCKET_URL": self.ws_url,
            "TASKCAST_MANAGEMENT_URL": self.management_url,
            "TASKCAST_TENANTS": "",
            "TASKCAST_TENANTS_SECRET_ARN": self.tenants_secret_arn,
            "TASKCAST_ALLOW_LOOPBACK_CALLBACKS": "1" if self.config.allow_loopback_callbacks else "0",
            # EMF lines would be console noise; POWERTOOLS_METRICS_DISABLED=false in the shell brings them back.
            "POWERTOOLS_METRICS_DISABLED": "true",
        }

    def _function_variables(self, template_environment: Mapping[str, str]) -> dict[str, str]:
        outer = {key: value for key, value in os.environ.items() if key != "TASKCAST_TENANTS"}
        return function_environment(template_environment, self._local_variables(), outer, self.config.environment)

    def _set_function_environment(self) -> None:
        template_environment, conflicts = merged_environment(list(self.functions))
        for key in conflicts:
            log.warning("functions set %s to different values; in one process the first one is used", key)
        self.environment = self._function_variables(template_environment)
        self._env.set(self.environment)
        self._env.set(aws_environment(self.moto.url, s3_url=self.s3_url, lambda_url=self.lambda_url,
                                      management_url=self.management_url, region=self.config.region))
        aws.reset_clients()

    def _import_handlers(self) -> None:
        for function in self.functions:
            try:
                function.handler()
            except Exception as error:  # noqa: BLE001 - a missing handler fails its invocations, not the stack
                log.warning("%s: handler %s cannot be imported yet (%s: %s)", function.logical_id,
                            function.handler_path, type(error).__name__, error)

    def _start_pollers(self, resolver: TemplateResolver, sqs: Any) -> None:
        queue_urls = {arn: self.resources.queues[logical_id] for logical_id, arn in self.resources.queue_arns.items()}
        streams, queues = event_source_mappings(resolver, self.functions, queue_urls)
        if self.config.state_dir:
            self.config.state_dir.mkdir(parents=True, exist_ok=True)
            state_dir = self.config.state_dir
        else:
            self._state_dir = tempfile.TemporaryDirectory(prefix="taskcast-local-")
            state_dir = Path(self._state_dir.name)
        send = destination_sender(self.functions, sqs, lambda: self.async_invoker)
        streams_client = self.client("dynamodbstreams")

        def stream_pollers() -> list[StreamPoller]:
            # A fresh checkpoint store reads the saved positions back: a restart resumes from the file.
            checkpoints = CheckpointStore(state_dir / "stream-positions.json")
            return [StreamPoller(mapping, streams_client, checkpoints, send, self.config.region,
                                 poll_interval_s=self.config.stream_poll_interval_ms / 1000)
                    for mapping in streams if mapping.enabled]

        self._stream_pollers = stream_pollers
        self.pollers.extend(stream_pollers())
        for queue_mapping in queues:
            if queue_mapping.enabled:
                scaled = queue_mapping.max_concurrency
                pollers = min(scaled, self.config.sqs_max_concurrency) if scaled else self.config.sqs_concurrency
                self.pollers.append(QueuePoller(queue_mapping, sqs, self.config.region, self.config.sqs_wait_s,
                                                pollers))
        for poller in self.pollers:
            poller.start()

    def stop(self) -> None:
        """Stop everything that started, in reverse order; safe to call more than once."""
        for poller in self.pollers:
            poller.stopping.set()
        for poller in self.pollers:
            poller.stop()
        self.pollers = []
        for component in (self.http_gateway, self.connections_api, self.websocket_gateway, self.lambda_api,
                          self.async_invoker, self.s3_front):
            if component is not None:
                try:
                    component.stop()
                except Exception:  # noqa: BLE001 - keep stopping the rest
                    log.exception("error while stopping %s", type(component).__name__)
        for function in self.functions:
            if function.runner is not None:
                function.runner.close()
        self.http_gateway = self.connections_api = self.websocket_gateway = self.lambda_api = None
        self.async_invoker = None
        self.s3_front = None
        self.moto.stop()
        self._env.restore()
        aws.reset_clients()
        if self._state_dir is not None:
            self._state_dir.cleanup()
            self._state_dir = None
        self._started = False

    def stop_stream_pollers(self) -> dict[str, Any]:
        """Stop the DynamoDB stream pollers (the batch in flight finishes and is checkpointed); the AWS
        services keep running and records pile up in the stream (a debug route for fault tests)."""
        stopping = [poller for poller in self.pollers if isinstance(poller, StreamPoller)]
        for poller in stopping:
            poller.stop(timeout_s=60.0)
        self.pollers = [poller for poller in self.pollers if poller not in stopping]
        return {"stopped": len(stopping)}

    def start_stream_pollers(self) -> dict[str, Any]:
        """Start new stream pollers that resume from the saved stream positions (no-op when running)."""
        if any(isinstance(poller, StreamPoller) for poller in self.pollers) or self._stream_pollers is None:
            return {"started": 0}
        started = self._stream_pollers()
        for poller in started:
            poller.start()
        self.pollers.extend(started)
        return {"started": len(started)}

    # ------------------------------------------------------------------ helpers
    def client(self, service: str) -> Any:
        """A boto3 client for one of the local services (moto, the Lambda API, ``@connections``)."""
        endpoint = {"lambda": self.lambda_api.url if self.lambda_api else None,
                    "apigatewaymanagementapi": self.connections_api.url if self.connections_api else None}
        return boto3.client(
            service,
            endpoint_url=endpoint.get(service) or self.moto.url,
            region_name=self.config.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
        )

    def _pause_websocket(self) -> dict[str, Any]:
        self._require(self.websocket_gateway).pause()
        return {"websocket": "stopped"}

    def _resume_websocket(self) -> dict[str, Any]:
        self._require(self.websocket_gateway).resume()
        return {"websocket": "listening"}

    def urls(self) -> dict[str, str]:
        return {
            "http_url": self.http_url,
            "dashboard_url": f"{self.http_url}/",
            "ws_url": self.ws_url,
            "management_url": self.management_url,
            "lambda_url": self.lambda_url,
            "moto_url": self.moto_url,
            "s3_url": self.s3_url,
        }

    def describe_functions(self) -> dict[str, Any]:
        """Each function's execution environments: how many, cold starts and their init durations."""
        return {function.logical_id: function.runner.describe() if function.runner else {"runner": "not started"}
                for function in self.functions}

    def describe(self) -> dict[str, Any]:
        """URLs, resources and functions of the running stack (no keys or secrets)."""
        return {
            **self.urls(),
            "region": self.config.region,
            "stack_name": self.config.stack_name,
            "template": str(self.config.template_path),
            "resources": self.resources.describe(),
            "functions": dict(self.functions.describe()),
            "tenants": sorted(self.tenants),
            "tenants_secret_arn": self.tenants_secret_arn,
            "websocket_listening": bool(self.websocket_gateway and self.websocket_gateway.listening),
        }
