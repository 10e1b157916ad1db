"""Where a job's result goes: inline in the task record, or, when large, an S3 object named by the task.

A task record is one DynamoDB item (400 KB at most) that already holds the input, so a result stays
inline only while it is under the inline limit and leaves the item within DynamoDB's limit; anything
larger is written to ``results/{tenant}/{task_id}.json`` and ``GET /tasks/{id}/result`` answers 303 to
a short-lived presigned GET of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from taskcast import aws
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


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str | None


class ResultStore:
    """Large results in the payloads bucket (and, for external workers, where they upload theirs)."""

    def __init__(self, bucket: str, s3: Any) -> None:
        self.bucket = bucket
        self.s3 = s3

    def put(self, task: Task, encoded: bytes) -> str:
        key = result_key(task.tenant, task.id)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=encoded, ContentType="application/json")
        return key

    def presign_put(self, key: str, content_type: str, expires_in: int) -> str:
        """A presigned PUT of ``key`` that S3 takes only with this ``Content-Type`` (signed, like uploads')."""
        return str(self.s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=max(1, expires_in),
            HttpMethod="PUT",
        ))

    def head(self, key: str) -> StoredObject | None:
        """The object's size and type, None when it is not there; raises on any other error."""
        try:
            answer = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if aws.error_code(error) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return StoredObject(int(answer["ContentLength"]), answer.get("ContentType"))
