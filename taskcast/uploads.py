"""Uploads: large task inputs that clients put straight into S3 with a presigned URL.

An upload is declared first (``POST /uploads``): its content type, optionally its exact size, and
optionally the task to start once it lands. The declaration is kept in the tasks table
(``pk`` = upload id, ``sk = "UPLOAD"``) so that the worker can re-check the object against it and the
S3 event can find the task; the object lives under a tenant-scoped key, ``uploads/{tenant}/{upload_id}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from taskcast import aws
from taskcast.models import now_iso
from taskcast.store import TTL_ATTRIBUTE, UPLOAD, from_attributes, get_item, item_key, owned_by, to_attributes

UPLOADS_PREFIX = "uploads/"
RESULTS_PREFIX = "results/"
WAITING_FOR_UPLOAD = "waiting for upload"


def upload_key(tenant: str, upload_id: str) -> str:
    return f"{UPLOADS_PREFIX}{tenant}/{upload_id}"


def parse_upload_key(key: str) -> tuple[str, str] | None:
    """``uploads/{tenant}/{upload_id}`` → ``(tenant, upload_id)``; None for any other key."""
    if not key.startswith(UPLOADS_PREFIX):
        return None
    tenant, _, upload_id = key[len(UPLOADS_PREFIX) :].rpartition("/")
    if not tenant or not upload_id:
        return None
    return tenant, upload_id


def result_key(tenant: str, task_id: str) -> str:
    return f"{RESULTS_PREFIX}{tenant}/{task_id}.json"


def upload_id_of(job_input: Any) -> str | None:
    """The upload a task's input names (``{"upload_id": "..."}``), or None."""
    if isinstance(job_input, dict) and isinstance(job_input.get("upload_id"), str):
        return str(job_input["upload_id"])
    return None


def media_type(content_type: str | None) -> str:
    """``"Text/CSV; charset=utf-8"`` → ``"text/csv"``: the part that must match, compared without case."""
    return (content_type or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class Upload:
    id: str
    tenant: str
    content_type: str
    size: int | None  # the exact size declared; None: any size up to max_size
    max_size: int
    url_expires_at: int  # epoch seconds: the presigned URL is refused after this
    task_id: str | None = None  # the task that starts when the object lands
    created_at: str = field(default_factory=now_iso)
    expires_at: int = 0  # epoch seconds: the record's TTL

    @property
    def key(self) -> str:
        return upload_key(self.tenant, self.id)


def object_refusal(upload: Upload, size: int, content_type: str | None) -> str | None:
    """Why the stored object is not what was declared (S3 enforces the presigned conditions; this is
    the worker's own check, so that a mistake anywhere before it cannot feed a job the wrong data)."""
    if upload.size is not None and size != upload.size:
        return f"the uploaded object is {size} bytes; {upload.size} bytes were declared"
    if size > upload.max_size:
        return f"the uploaded object is {size} bytes; at most {upload.max_size} bytes are accepted"
    if media_type(content_type) != media_type(upload.content_type):
        return f"the uploaded object is {content_type or 'untyped'}; {upload.content_type} was declared"
    return None


def _to_item(upload: Upload) -> dict[str, Any]:
    return to_attributes(
        {
            **item_key(upload.id, UPLOAD),
            "tenant": upload.tenant,
            "content_type": upload.content_type,
            "size": upload.size,
            "max_size": upload.max_size,
            "url_expires_at": upload.url_expires_at,
            "task_id": upload.task_id,
            "created_at": upload.created_at,
            TTL_ATTRIBUTE: upload.expires_at,
        }
    )


def _from_item(item: dict[str, Any]) -> Upload:
    data = from_attributes(item)
    return Upload(
        id=data["pk"],
        tenant=data["tenant"],
        content_type=data["content_type"],
        size=data.get("size"),
        max_size=int(data["max_size"]),
        url_expires_at=int(data["url_expires_at"]),
        task_id=data.get("task_id"),
        created_at=data["created_at"],
        expires_at=int(data.get("expires_at", 0)),
    )


class UploadExists(Exception):
    pass


class UploadStore:
    """Upload declarations, in the tasks table beside the tasks (``sk = "UPLOAD"``)."""

    def __init__(self, table_name: str, client: Any = None, retention_s: int = 7 * 86400) -> None:
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.retention_s = retention_s

    def create(self, upload: Upload) -> Upload:
        if not upload.expires_at:
            upload = replace(upload, expires_at=int(time.time()) + self.retention_s)
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=_to_item(upload),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if aws.error_code(error) == "ConditionalCheckFailedException":
                raise UploadExists(upload.id) from error
            raise
        return upload

    def get(self, upload_id: str) -> Upload | None:
        item = get_item(self.client, self.table_name, item_key(upload_id, UPLOAD))
        return _from_item(item) if item else None

    def get_for_tenant(self, upload_id: str, tenant: str) -> Upload | None:
        """The upload if it exists and belongs to ``tenant``; None either way otherwise (no existence leak)."""
        return owned_by(self.get(upload_id), tenant)
