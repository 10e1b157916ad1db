"""I/O around uploads shared by the REST handler and the upload events handler: sending a deadline
to the upload events queue, and asking S3 whether an object is there."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from taskcast import aws
from taskcast.upload_events import UploadDeadline


class DeadlineQueue:
    """Sends upload deadlines to the upload events queue, delayed until they are due (at most 15 min)."""

    def __init__(self, queue_url: str, sqs: Any = None) -> None:
        self.queue_url = queue_url
        self.sqs = sqs or aws.client("sqs")

    def send(self, deadline: UploadDeadline, delay_s: int) -> None:
        if not self.queue_url:
            raise RuntimeError("UPLOAD_EVENTS_QUEUE_URL is not set")
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=deadline.to_json(), DelaySeconds=delay_s)


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if aws.error_code(error) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True
