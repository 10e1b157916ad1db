"""One DynamoDB call at a time against moto, as DynamoDB applies each request atomically.

moto's in-process backend is not thread-safe (a transaction deep-copies the table while another thread
writes it). Tests that run the worker in threads share one client wrapped here: every single call is
atomic, while read-decide-write sequences of different threads still interleave and race for real.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3

_moto_lock = threading.RLock()


class SerializedClient:
    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with _moto_lock:
                return attribute(*args, **kwargs)

        return call


def serialized_dynamodb() -> SerializedClient:
    return SerializedClient(boto3.client("dynamodb"))
