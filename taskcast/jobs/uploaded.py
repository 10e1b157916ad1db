"""What a job reads when its input names an upload: the object, checked against its declaration
and streamed in chunks, never whole in memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from taskcast import aws
from taskcast.jobs.registry import JobFailed
from taskcast.uploads import Upload, UploadStore, object_refusal

CHUNK_BYTES = 256 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class UploadedObject:
    upload: Upload
    size: int
    content_type: str
    etag: str
    bucket: str
    s3: Any

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The object's bytes, ``chunk_bytes`` at a time; the object read is the one that was checked
        (``If-Match`` on its ETag), so a second PUT to the same URL meanwhile fails the read instead."""
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.upload.key, IfMatch=self.etag)["Body"]
        except ClientError as error:
            if aws.error_code(error) in {"412", "PreconditionFailed"}:
                raise JobFailed("the uploaded object changed after it was checked", kind="upload-changed") from None
            if aws.error_code(error) in _MISSING:
                raise JobFailed("the uploaded object is gone", kind="upload-missing") from None
            raise
        try:
            yield from body.iter_chunks(chunk_bytes)
        finally:
            body.close()


class UploadReader:
    def __init__(self, uploads: UploadStore, s3: Any, bucket: str) -> None:
        self.uploads = uploads
        self.s3 = s3
        self.bucket = bucket

    def open(self, tenant: str, upload_id: str) -> UploadedObject:
        """The tenant's upload, after checking that its object is there and is what was declared."""
        upload = self.uploads.get_for_tenant(upload_id, tenant)
        if upload is None:
            raise JobFailed(f"there is no upload {upload_id!r}", kind="upload-not-found")
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=upload.key)
        except ClientError as error:
            if aws.error_code(error) in _MISSING:
                raise JobFailed(f"nothing was uploaded for upload {upload_id!r}", kind="upload-missing") from None
            raise
        size, content_type = int(head["ContentLength"]), head.get("ContentType") or ""
        refusal = object_refusal(upload, size, content_type)
        if refusal is not None:
            raise JobFailed(refusal, kind="upload-mismatch")
        return UploadedObject(upload, size, content_type, head["ETag"], self.bucket, self.s3)
