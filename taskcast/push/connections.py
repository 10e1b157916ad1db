"""Posting frames to WebSocket connections through API Gateway's ``@connections`` API.

One shared ``apigatewaymanagementapi`` client per endpoint, a bounded thread pool for concurrent
posts, and our own retry loop (the client's are turned off so the two do not multiply):

- ``GoneException`` (410): the connection is closed; the caller deletes its subscriptions;
- 429 ``LimitExceededException``, 5xx and connection errors: retried with exponential backoff and
  full jitter, a bounded number of times; then ``PostFailed`` is raised so the stream record fails
  and the stream delivers it again. Nothing is silently dropped.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from taskcast.aws import error_code
from taskcast.metrics import NO_METRICS, WEBSOCKET_POST_RETRIES, MetricsSink

T = TypeVar("T")
R = TypeVar("R")

_RETRYABLE_CODES = frozenset(
    {"LimitExceededException", "TooManyRequestsException", "ThrottlingException", "InternalServerError"}
)
_lock = threading.Lock()


class PostOutcome(StrEnum):
    DELIVERED = "delivered"
    GONE = "gone"


class PostFailed(Exception):
    """A frame could not be posted after every retry (or the error is not one to retry)."""

    def __init__(self, connection_id: str, reason: str) -> None:
        super().__init__(f"posting to connection {connection_id} failed: {reason}")
        self.connection_id = connection_id
        self.reason = reason


def backoff_delays(
    attempts: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random
) -> list[float]:
    """The waits between ``attempts`` tries: exponential growth capped at ``cap_s``, with full jitter."""
    return [rand() * min(cap_s, base_s * 2**retry) for retry in range(max(0, attempts - 1))]


def _http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_gone(error: Exception) -> bool:
    return isinstance(error, ClientError) and (error_code(error) == "GoneException" or _http_status(error) == 410)


def is_retryable(error: Exception) -> bool:
    if isinstance(error, ConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        status = _http_status(error)
        return error_code(error) in _RETRYABLE_CODES or status == 429 or status >= 500
    return False


@cache
def management_client(endpoint_url: str, pool_size: int = 32) -> Any:
    """The shared ``apigatewaymanagementapi`` client for ``endpoint_url`` (the stage URL on AWS)."""
    with _lock:
        return boto3.session.Session().client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint_url,
            config=Config(
                # One attempt per call: ConnectionPoster owns retries, with jitter and a bound.
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=pool_size,
                connect_timeout=5,
                read_timeout=10,
            ),
        )


class ConnectionPoster:
    def __init__(
        self,
        client: Any,
        *,
        workers: int = 16,
        attempts: int = 6,
        base_delay_s: float = 0.05,
        max_delay_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        self._rand = rand
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fanout")

    def post(self, connection_id: str, data: bytes, metrics: MetricsSink = NO_METRICS) -> PostOutcome:
        """Post one frame, retrying transient failures; raises ``PostFailed`` when it gives up.

        ``metrics`` counts the retries; the caller's own, as the poster is shared by several functions.
        """
        delays = backoff_delays(self.attempts, self.base_delay_s, self.max_delay_s, self._rand)
        last_reason = ""
        for attempt in range(self.attempts):
            try:
                self.client.post_to_connection(ConnectionId=connection_id, Data=data)
                return PostOutcome.DELIVERED
            except Exception as error:  # noqa: BLE001 - classified below, re-raised as PostFailed
                if is_gone(error):
                    return PostOutcome.GONE
                if not is_retryable(error):
                    raise PostFailed(connection_id, _describe(error)) from error
                last_reason = _describe(error)
            if attempt < len(delays):
                metrics.count(WEBSOCKET_POST_RETRIES)
                self._sleep(delays[attempt])
        raise PostFailed(connection_id, f"still failing after {self.attempts} attempts ({last_reason})")

    def map_settled(self, function: Callable[[T], R], items: Iterable[T]) -> list[tuple[T, R | BaseException]]:
        """Run ``function`` over ``items`` in the pool; each item paired with its result or its exception."""
        futures = [(item, self._pool.submit(function, item)) for item in items]
        settled: list[tuple[T, R | BaseException]] = []
        for item, future in futures:
            error = future.exception()
            settled.append((item, error if error is not None else future.result()))
        return settled

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error_code(error) or 'error'} (HTTP {_http_status(error)})"
    return type(error).__name__
