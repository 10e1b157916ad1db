"""AWS clients for jobs. A synchronous Lambda invoke may run for up to 15 minutes and must never be
sent twice, so the ``lambda`` client waits that long for an answer and does not retry."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from taskcast import aws

# Lambda's own limit on one invocation, plus a margin for the answer to travel back.
SYNC_INVOKE_READ_TIMEOUT_S = 15 * 60 + 30


@cache
def _sync_lambda_client() -> Any:
    # boto3 reads AWS_ENDPOINT_URL_LAMBDA itself, as the shared clients do.
    return boto3.session.Session().client(
        "lambda",
        config=Config(
            read_timeout=SYNC_INVOKE_READ_TIMEOUT_S,
            connect_timeout=10,
            retries={"total_max_attempts": 1},
            tcp_keepalive=True,
        ),
    )


def job_client(service: str) -> Any:
    if service == "lambda":
        return _sync_lambda_client()
    return aws.client(service)
