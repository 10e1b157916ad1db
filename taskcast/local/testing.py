"""A real local stack for tests and benchmarks: ``running_stack(**overrides)``.

    from taskcast.local.testing import running_stack

    with running_stack() as stack:
        requests.post(f"{stack.http_url}/tasks", json={...}, headers={"Authorization": f"Bearer {stack.api_key}"})
        websockets.sync.client.connect(stack.websocket_url())      # ws://127.0.0.1:<port>/?token=<api key>
        stack.request_log                                          # [{"method", "path", "status", "resource", ...}]

By default the stack runs as a child process (``taskcast local --ready-json``) on random free ports,
so its environment and threads never mix with the caller's (moto decorators, cached boto3 clients),
and it runs every function from its ``sam build`` artifact in processes of its own, as Lambda does.
``in_process=True`` runs the stack in the calling process with the handlers imported from the source
tree (``--from-source``; handy under a debugger).

Keyword arguments (all optional):

- ``template``: path of the SAM template (default: the project's ``template.yaml``);
- ``tenants``: ``{"name": {"api_key", "webhook_secret"}}`` passed as ``TASKCAST_TENANTS``; None (default)
  lets the stack generate its dev tenant (then ``/dashboard/config.js`` carries its key);
- ``environment``: extra variables for the stack and its functions (``TASKCAST_*`` ones override the
  template's values, e.g. ``{"TASKCAST_WEBHOOK_RETRY_SCHEDULE": "0.2,0.5"}``);
- ``parameters``: template parameter overrides; ``python_path``: folders put on the stack process's
  path (with ``in_process=True``, where handlers are imported from: a test template's dummy handlers;
  otherwise a function's code is its ``CodeUri``);
- ``http_port``, ``ws_port``, ``mgmt_port``, ``s3_port``: 0 (default) picks free ports;
- ``ws_idle_timeout_s``, ``ws_max_duration_s``, ``ws_max_message_bytes``, ``ws_max_frame_bytes``,
  ``integration_timeout_s``, ``max_payload_bytes``, ``stream_poll_ms``, ``async_retry_delays_s``:
  the gateway and Lambda limits (see ``docs/local-stack.md``);
- ``start_timeout_s`` (default 90), ``in_process`` (default False).

The object it yields, ``RunningStack``: ``http_url``, ``ws_url``, ``management_url``, ``lambda_url``,
``moto_url``, ``s3_url`` (the S3 front), ``tenants``, ``tenant`` (the first tenant's name), ``api_key``,
``webhook_secret``, ``resources`` (``tables``, ``streams``, ``queues`` (URLs), ``queue_arns``, ``buckets``
by logical id), ``functions``, ``request_log``, ``clear_request_log()``, ``client(service)`` (boto3 clients for moto's
services, ``lambda`` and ``apigatewaymanagementapi``), ``websocket_url(api_key=None)``,
``stop_websocket()`` / ``start_websocket()`` (close and reopen the WebSocket port),
``table_name(logical_id)``, ``queue_url(logical_id)``, ``tenants_secret_arn`` and ``put_tenants(tenants)``
(the Secrets Manager secret the functions read the tenants from, as on AWS) and ``output()`` (the stack's log
so far).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import boto3

from taskcast.cli import READY_PREFIX

_SETTING_VARIABLES = {
    "ws_idle_timeout_s": "TASKCAST_LOCAL_WS_IDLE_TIMEOUT",
    "ws_max_duration_s": "TASKCAST_LOCAL_WS_MAX_DURATION",
    "ws_max_message_bytes": "TASKCAST_LOCAL_WS_MAX_MESSAGE",
    "ws_max_frame_bytes": "TASKCAST_LOCAL_WS_MAX_FRAME",
    "integration_timeout_s": "TASKCAST_LOCAL_INTEGRATION_TIMEOUT",
    "max_payload_bytes": "TASKCAST_LOCAL_MAX_PAYLOAD",
    "stream_poll_ms": "TASKCAST_LOCAL_STREAM_POLL_MS",
    "async_retry_delays_s": "TASKCAST_LOCAL_ASYNC_RETRY_DELAYS",
}


class StackStartError(RuntimeError):
    """The stack did not become ready; the message carries the end of its log."""


@dataclass
class RunningStack:
    http_url: str
    ws_url: str
    management_url: str
    lambda_url: str
    moto_url: str
    tenants: dict[str, dict[str, str]]
    resources: dict[str, dict[str, str]]
    functions: dict[str, dict[str, str]]
    s3_url: str = ""  # the S3 front
    region: str = "us-east-1"
    tenants_secret_arn: str = ""  # the Secrets Manager secret the functions read the tenants from
    log_path: Path | None = None
    process: subprocess.Popen[str] | None = field(default=None, repr=False)
    local_stack: Any = field(default=None, repr=False)  # the LocalStack when in_process=True

    # ------------------------------------------------------------------ tenants
    @property
    def tenant(self) -> str:
        return next(iter(self.tenants))

    @property
    def api_key(self) -> str:
        return self.tenants[self.tenant]["api_key"]

    @property
    def webhook_secret(self) -> str:
        return self.tenants[self.tenant]["webhook_secret"]

    def put_tenants(self, tenants: Mapping[str, Mapping[str, str]]) -> None:
        """Replace the tenants in the stack's secret (revoke a key, rotate a secret), as on AWS: the functions
        see the change once their tenant cache expires (``TASKCAST_TENANT_CACHE_TTL``)."""
        self.client("secretsmanager").put_secret_value(SecretId=self.tenants_secret_arn,
                                                       SecretString=json.dumps(tenants))

    def websocket_url(self, api_key: str | None = None) -> str:
        """The WebSocket URL with ``?token=`` (the first tenant's key unless another is given)."""
        return f"{self.ws_url}/?token={quote(self.api_key if api_key is None else api_key, safe='')}"

    # ------------------------------------------------------------------ resources
    def table_name(self, logical_id: str) -> str:
        return self.resources["tables"][logical_id]

    def queue_url(self, logical_id: str) -> str:
        return self.resources["queues"][logical_id]

    def client(self, service: str) -> Any:
        own = {"lambda": self.lambda_url, "apigatewaymanagementapi": self.management_url}
        endpoint = own.get(service, self.moto_url)
        return boto3.client(service, endpoint_url=endpoint, region_name=self.region, aws_access_key_id="testing",
                            aws_secret_access_key="testing", aws_session_token="testing")

    # ------------------------------------------------------------------ gateway
    def _local(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.http_url}{path}", method=method)
        with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310 - our own loopback URL
            body = answer.read()
        return json.loads(body) if body else None

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """The HTTP gateway's requests so far: method, path, query, status, resource, at, request_id."""
        return self._local("GET", "/_local/requests")

    def clear_request_log(self) -> None:
        self._local("DELETE", "/_local/requests")

    def stop_websocket(self) -> None:
        """Close the WebSocket port and its connections (clients then see it unreachable)."""
        self._local("POST", "/_local/websocket/stop")

    def start_websocket(self) -> None:
        self._local("POST", "/_local/websocket/start")

    def output(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""


def _settings_environment(overrides: Mapping[str, Any]) -> dict[str, str]:
    env = {}
    for name, variable in _SETTING_VARIABLES.items():
        value = overrides.get(name)
        if value is None:
            continue
        env[variable] = ",".join(str(item) for item in value) if isinstance(value, list | tuple) else str(value)
    return env


def _child_environment(tenants: Mapping[str, Any] | None, environment: Mapping[str, str],
                       python_path: Sequence[str | Path], settings: Mapping[str, str]) -> dict[str, str]:
    # Nothing of the caller's taskcast or endpoint settings leaks in: the stack is what was asked for.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TASKCAST_", "AWS_ENDPOINT_URL", "POWERTOOLS_"))}
    env.update(settings)
    if tenants is not None:
        env["TASKCAST_TENANTS"] = json.dumps(tenants)
    env.update(environment)
    paths = [str(Path(path).resolve()) for path in python_path]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _pump(stream: IO[str], log: IO[str], ready: threading.Event, record: dict[str, Any]) -> None:
    for line in stream:
        if line.startswith(READY_PREFIX) and not ready.is_set():
            record.update(json.loads(line[len(READY_PREFIX):]))
            ready.set()
            continue  # the ready line may carry a generated key; it stays out of the log file
        log.write(line)
        log.flush()
    ready.set()  # the process ended


@contextmanager
def running_stack(
    *,
    template: str | Path | None = None,
    tenants: Mapping[str, Mapping[str, str]] | None = None,
    environment: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
    python_path: Sequence[str | Path] = (),
    http_port: int = 0,
    ws_port: int = 0,
    mgmt_port: int = 0,
    s3_port: int = 0,
    start_timeout_s: float = 90.0,
    in_process: bool = False,
    log_level: str = "INFO",
    **limits: Any,
) -> Iterator[RunningStack]:
    unknown = set(limits) - set(_SETTING_VARIABLES)
    if unknown:
        raise TypeError(f"running_stack() got unknown settings: {', '.join(sorted(unknown))}")
    settings = _settings_environment(limits)
    if in_process:
        with _in_process(template, tenants, environment or {}, parameters or {}, python_path,
                         (http_port, ws_port, mgmt_port, s3_port), settings) as stack:
            yield stack
        return
    command = [sys.executable, "-m", "taskcast.cli", "local", "--port", str(http_port), "--ws-port", str(ws_port),
               "--mgmt-port", str(mgmt_port), "--s3-port", str(s3_port),
               "--ready-json", "--exit-with-stdin", "--log-level", log_level]
    if template is not None:
        command += ["--template", str(Path(template).resolve())]
    if parameters:
        command += ["--parameter-overrides", *(f"{key}={value}" for key, value in parameters.items())]
    with tempfile.TemporaryDirectory(prefix="taskcast-stack-") as folder:
        log_path = Path(folder) / "stack.log"
        env = _child_environment(tenants, environment or {}, python_path, settings)
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True,  # a Ctrl-C in the test runner's terminal stops the stack through us
        )
        ready, record = threading.Event(), {}
        with open(log_path, "w", encoding="utf-8") as log:
            assert process.stdout is not None
            pump = threading.Thread(target=_pump, args=(process.stdout, log, ready, record), daemon=True)
            pump.start()
            try:
                if not ready.wait(start_timeout_s) or not record:
                    raise StackStartError(f"the local stack did not start:\n{_tail(log_path)}")
                generated = record.get("generated_tenant")
                stack_tenants = (
                    {name: dict(value) for name, value in tenants.items()} if tenants is not None
                    else {generated["name"]: {"api_key": generated["api_key"],
                                              "webhook_secret": generated["webhook_secret"]}}
                )
                yield RunningStack(
                    http_url=record["http_url"], ws_url=record["ws_url"], management_url=record["management_url"],
                    lambda_url=record["lambda_url"], moto_url=record["moto_url"], s3_url=record["s3_url"],
                    tenants=stack_tenants,
                    resources=record["resources"], functions=record["functions"], region=record["region"],
                    tenants_secret_arn=record.get("tenants_secret_arn", ""), log_path=log_path, process=process,
                )
            finally:
                _stop(process)
                pump.join(10)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stdin:
        process.stdin.close()


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def _in_process(template: str | Path | None, tenants: Mapping[str, Any] | None, environment: Mapping[str, str],
                parameters: Mapping[str, str], python_path: Sequence[str | Path], ports: tuple[int, int, int, int],
                settings: Mapping[str, str]) -> Iterator[RunningStack]:
    from taskcast.local.stack import LocalConfig, LocalStack

    added = [str(Path(path).resolve()) for path in python_path if str(Path(path).resolve()) not in sys.path]
    sys.path[:0] = added
    overrides: dict[str, Any] = {
        "http_port": ports[0], "ws_port": ports[1], "mgmt_port": ports[2], "s3_port": ports[3],
        "tenants_json": json.dumps(tenants) if tenants is not None else None,
        "parameters": dict(parameters), "environment": dict(environment), "from_source": True,
    }
    if template is not None:
        overrides["template_path"] = Path(template).resolve()
    config = LocalConfig.from_env({**settings}, **overrides)
    try:
        with LocalStack(config) as stack:
            urls = stack.urls()
            yield RunningStack(
                http_url=urls["http_url"], ws_url=urls["ws_url"], management_url=urls["management_url"],
                lambda_url=urls["lambda_url"], moto_url=urls["moto_url"], s3_url=urls["s3_url"],
                tenants={name: dict(value) for name, value in stack.tenants.items()},
                resources=stack.resources.describe(), functions=dict(stack.functions.describe()),
                region=stack.config.region, tenants_secret_arn=stack.tenants_secret_arn, local_stack=stack,
            )
    finally:
        for path in added:
            if path in sys.path:
                sys.path.remove(path)
