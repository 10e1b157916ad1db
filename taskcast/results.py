"""Where a job's result goes: inline in the task record, or, when large, an S3 object named by the task.

A task record is one DynamoDB item (400 KB at most) that already holds the input, so a result stays
inline only while it is under the inline limit and leaves the item within DynamoDB's limit; anything
larger is written to ``results/{tenant}/{task_id}.json`` and ``GET /tasks/{id}/result`` answers 303 to
a short-lived presigned GET of it.
"""

from __future__ import annotations

import json
from typing import Any

from taskcast.models import Task
from taskcast.uploads import result_key

KIB = 1024
# DynamoDB's item limit is 400 KB; this leaves room for the task's other attributes.
ITEM_BUDGET_BYTES = 380 * KIB


def encode_result(result: Any) -> bytes:
    """The result as stored (inline or in S3): JSON, UTF-8. Raises TypeError/ValueError if it is not JSON."""
    return json.dumps(result).encode()


def goes_to_s3(result_bytes: int, input_bytes: int, inline_limit_bytes: int) -> bool:
    return result_bytes > inline_limit_bytes or result_bytes + input_bytes > ITEM_BUDGET_BYTES


class ResultStore:
    """Large results in the payloads bucket."""

    def __init__(self, bucket: str, s3: Any) -> None:
        self.bucket = bucket
        self.s3 = s3

    def put(self, task: Task, encoded: bytes) -> str:
        key = result_key(task.tenant, task.id)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=encoded, ContentType="application/json")
        return key
