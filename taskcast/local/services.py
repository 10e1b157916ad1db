"""The AWS services of the local stack: moto's server (DynamoDB with Streams, SQS, S3, and everything
else moto knows) in a child process, and the environment that points plain boto3 at it.

boto3 reads ``AWS_ENDPOINT_URL_<SERVICE>`` (and ``AWS_ENDPOINT_URL`` for any other service) when a
client is created, so the handlers run unchanged: the stack sets these variables in its own process
before any handler builds a client. ``AWS_ENDPOINT_URL`` itself points at moto too, so a service the
stack does not emulate can never reach real AWS.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import IO

from taskcast.local.resolve import DEFAULT_REGION

log = logging.getLogger("taskcast.local")

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def aws_environment(
    moto_url: str,
    *,
    s3_url: str | None = None,
    lambda_url: str | None = None,
    management_url: str | None = None,
    region: str = DEFAULT_REGION,
) -> dict[str, str]:
    """The variables that send every boto3 client of this process to the local services (S3 to the S3 front
    when there is one, so that presigned URLs name it)."""
    env = {
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        # boto3's name for the Streams service id is "DynamoDB Streams"; both spellings are set.
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": moto_url,
        "AWS_ENDPOINT_URL_DYNAMODBSTREAMS": moto_url,
        "AWS_ENDPOINT_URL_SQS": moto_url,
        "AWS_ENDPOINT_URL_S3": s3_url or moto_url,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
        # The Lambda tracer and X-Ray have nothing to talk to locally.
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_XRAY_SDK_ENABLED": "false",
    }
    if lambda_url:
        env["AWS_ENDPOINT_URL_LAMBDA"] = lambda_url
    if management_url:
        env["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] = management_url
    return env


class EnvironmentPatch:
    """Sets variables in ``os.environ`` and puts the previous values back on ``restore``."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            if key not in self._saved:
                self._saved[key] = os.environ.get(key)
            os.environ[key] = value

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()


class MotoService:
    """moto's server in a child process on a free port of 127.0.0.1."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 60.0) -> None:
        self.host = host
        self.requested_port = port
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("moto is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "taskcast.local.moto_process",
                   "--host", self.host, "--port", str(self.requested_port)]
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **FAKE_CREDENTIALS},
        )
        ready = threading.Event()
        lines: list[str] = []
        assert self._process.stdout is not None
        reader = threading.Thread(
            target=_read_output, args=(self._process.stdout, ready, lines), name="moto-output", daemon=True
        )
        reader.start()
        if not ready.wait(self.start_timeout_s) or not lines:
            self.stop()
            raise RuntimeError("moto's server did not start (is moto[server] installed?)")
        self.port = int(lines[0].split()[1])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin:
            process.stdin.close()  # the child exits at EOF
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _read_output(stream: IO[str], ready: threading.Event, lines: list[str]) -> None:
    for line in stream:
        if line.startswith("MOTO_READY ") and not ready.is_set():
            lines.append(line.strip())
            ready.set()
        elif line.strip():
            log.debug("moto: %s", line.rstrip())
    ready.set()  # the child ended before it was ready; start() sees no port
