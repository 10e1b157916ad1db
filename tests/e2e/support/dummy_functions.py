"""Small handlers that a test template adds beside the real ones, to exercise the local stack's
machinery (routes, limits, event source mappings, asynchronous invocation) from the outside.

They run as the real functions do, from their own artifact (this folder, the test template's
``CodeUri``) with only what the Lambda runtime provides (boto3), so they import nothing of taskcast.
What they see is written to the ``ProbeTable`` (moto), which the tests read with boto3: ``pk`` = what
was delivered, ``sk`` = one item per delivery.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import boto3

_dynamodb = boto3.client("dynamodb")  # created once per environment, as a handler should


def _table() -> str:
    return os.environ["PROBE_TABLE"]


def _note(pk: str, **attributes: str) -> None:
    item = {"pk": {"S": pk}, "sk": {"S": f"{time.time():.6f}-{uuid.uuid4()}"}}
    item.update({key: {"S": value} for key, value in attributes.items()})
    _dynamodb.put_item(TableName=_table(), Item=item)


def _deliveries(pk: str) -> int:
    answer = _dynamodb.query(
        TableName=_table(), KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": pk}}
    )
    return answer["Count"]


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers the event it got and a few environment variables, as JSON."""
    body = {
        "event": event,
        "function_name": context.function_name,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env": {key: os.environ.get(key) for key in ("PROBE_TABLE", "PROBE_QUEUE_URL", "TASKS_TABLE")},
    }
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(float((event.get("queryStringParameters") or {}).get("seconds", "3")))
    return {"statusCode": 200, "body": "done"}


def broken_proxy_answer(event: dict[str, Any], context: Any) -> Any:
    return {"body": "no statusCode"}


def stream_consumer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Notes every record; ``fail_times`` items are reported failed on their first ``fail_times`` deliveries
    (``fail_once``: the first), ``always_fail`` raises."""
    failures = []
    for record in event["Records"]:
        image = record["dynamodb"].get("NewImage") or {}
        key = record["dynamodb"]["Keys"]["pk"]["S"]
        if "always_fail" in image:
            raise RuntimeError(f"record {key} always fails")
        _note(f"stream#{key}", event_name=record["eventName"], sequence=record["dynamodb"]["SequenceNumber"],
              source=record["eventSourceARN"])
        fail_times = 1 if "fail_once" in image else int((image.get("fail_times") or {}).get("S", "0"))
        if fail_times and _deliveries(f"stream#{key}") <= fail_times:
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}


def queue_consumer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Notes every message; a body of ``fail`` is always reported failed."""
    failures = []
    for record in event["Records"]:
        _note(f"queue#{record['body']}", message_id=record["messageId"],
              receive_count=record["attributes"]["ApproximateReceiveCount"])
        if record["body"] == "fail":
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def async_target(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Notes its invocation; ``{"fail": true}`` raises, ``{"sleep": s}`` sleeps first."""
    _note(f"async#{event.get('name', '')}", request_id=context.aws_request_id)
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"echo": event}
