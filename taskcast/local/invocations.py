"""What one invocation of a local function ends with, in Lambda's own shapes."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation: ``payload`` when it returned, ``error`` (Lambda's error object) when
    not. ``timed_out``: the function overran its timeout. ``cut``: the caller stopped waiting first (an API
    Gateway integration timeout) while the function ran on."""

    request_id: str
    payload: Any = None
    error: dict[str, Any] | None = None
    timed_out: bool = False
    cut: bool = False

    @property
    def failed(self) -> bool:
        return self.error is not None


def timeout_error(request_id: str, timeout_s: float) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"errorMessage": f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"}


def exception_error(request_id: str, error: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_exception(error)[1:],
    }


def throttled_error(request_id: str) -> dict[str, Any]:
    return {"errorType": "TooManyRequestsException", "requestId": request_id,
            "errorMessage": "Rate Exceeded. (the function's reserved concurrency is 0)"}
