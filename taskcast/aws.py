"""Default boto3 clients: one per service and process, thread-safe, reached through the standard
``AWS_ENDPOINT_URL_<SERVICE>`` variables so the local stack points them at its own services."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

_lock = threading.Lock()


@cache
def _client(service: str, endpoint_url: str | None) -> Any:
    # boto3's default session is not thread-safe to build clients from; a lock keeps creation serial.
    with _lock:
        return boto3.session.Session().client(
            service,
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=64),
        )


def client(service: str, endpoint_url: str | None = None) -> Any:
    """A shared client for ``service`` (``"dynamodb"``, ``"sqs"``, ``"lambda"``, ...)."""
    return _client(service, endpoint_url)


def error_code(error: ClientError) -> str:
    """The AWS error code of a failed call (``"ConditionalCheckFailedException"``, ``"404"``, ...)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def reset_clients() -> None:
    """Forget cached clients (tests and the local stack change endpoints between runs)."""
    _client.cache_clear()
