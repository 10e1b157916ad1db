"""Lambda's asynchronous invocation (``InvocationType=Event``): run in the background with the
function's timeout, retry as ``EventInvokeConfig.MaximumRetryAttempts`` says (Lambda's default: 2),
and send the destination record to ``OnFailure`` (or ``OnSuccess``) when it is configured.

Lambda waits one minute, then two, between retries; locally the waits default to 1 s and 2 s
(``retry_delays_s``) so a failing function shows its outcome while you watch.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from taskcast.local.functions import FunctionRegistry, Invocation, LocalFunction

log = logging.getLogger("taskcast.local")

DEFAULT_ASYNC_RETRIES = 2


def destination_record(
    function: LocalFunction, event: Any, invocation: Invocation, attempts: int, *, success: bool
) -> dict[str, Any]:
    """The record Lambda sends to an asynchronous invocation's destination."""
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if not success:
        response["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": invocation.request_id,
            "functionArn": f"{function.arn}:$LATEST",
            "condition": "Success" if success else "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": response,
        "responsePayload": invocation.payload if success else invocation.error,
    }


class AsyncInvoker:
    """Runs ``Event`` invocations in a pool and delivers their destination records."""

    def __init__(
        self,
        functions: FunctionRegistry,
        send_to_destination: Callable[[str, dict[str, Any]], None],
        retry_delays_s: Sequence[float] = (1.0, 2.0),
        workers: int = 64,
    ) -> None:
        self.functions = functions
        self.send_to_destination = send_to_destination
        self.retry_delays_s = tuple(retry_delays_s)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda-async")
        self._stopping = threading.Event()

    def submit(self, function: LocalFunction, event: Any, request_id: str) -> None:
        self._pool.submit(self._run, function, event, request_id)

    def _run(self, function: LocalFunction, event: Any, request_id: str) -> None:
        config = function.event_invoke_config
        retries = int(config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES))
        attempt = 0
        while True:
            attempt += 1
            invocation = function.invoke(event, request_id=request_id)
            if not invocation.failed or attempt > retries or self._stopping.is_set():
                break
            delay = self.retry_delays_s[min(attempt - 1, len(self.retry_delays_s) - 1)] if self.retry_delays_s else 0
            log.info("%s request %s: retry %d of %d in %.1f s", function.name, request_id, attempt, retries, delay)
            if self._stopping.wait(delay):
                return
        destination = (config.get("DestinationConfig") or {}).get("OnSuccess" if not invocation.failed else "OnFailure")
        if not destination or not destination.get("Destination"):
            return
        record = destination_record(function, event, invocation, attempt, success=not invocation.failed)
        try:
            self.send_to_destination(destination["Destination"], record)
        except Exception:  # noqa: BLE001 - a lost destination record is logged, never fatal
            log.exception("%s request %s: could not deliver to %s", function.name, request_id, destination)

    def stop(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


def destination_sender(functions: FunctionRegistry, sqs: Any, invoker: Callable[[], AsyncInvoker | None]):
    """Sends a record to an SQS queue ARN, or invokes a Lambda function ARN asynchronously with it."""

    def send(destination_arn: str, record: dict[str, Any]) -> None:
        if destination_arn.startswith("arn:aws:sqs:"):
            region, account, name = destination_arn.split(":")[3:6]
            url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
        elif destination_arn.startswith("arn:aws:lambda:"):
            target = functions.find(destination_arn)
            async_invoker = invoker()
            if target is None or async_invoker is None:
                raise LookupError(f"no local function for {destination_arn}")
            async_invoker.submit(target, record, request_id=record["requestContext"]["requestId"] + "-destination")
        else:
            log.warning("destination %s is not supported locally (only SQS and Lambda); record dropped",
                        destination_arn)

    return send
