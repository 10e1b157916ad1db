"""The messages of the upload events queue, and the decisions taken on them (pure functions).

Two kinds of message arrive on the queue:

- S3 event notifications (``{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
  "s3": {"bucket": {"name"}, "object": {"key", "size"}}}]}``; S3 also sends one ``s3:TestEvent`` when
  the notification is configured): an upload landed, so the task waiting for it starts;
- upload deadlines (``{"kind": "upload-deadline", "upload_id", "task_id", "not_before"}``), sent with
  an SQS delay when a task is created with its upload: at ``not_before`` (the URL's expiry plus a
  grace period) a task still waiting fails ``/upload-expired``, unless its object is there after all
  (its event was lost or late), in which case it starts. SQS delays a message at most 15 minutes, so
  a later deadline is sent on again until it is due.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from taskcast.models import Status, Task, problem, transition
from taskcast.uploads import Upload, upload_id_of

DEADLINE_KIND = "upload-deadline"
MAX_SQS_DELAY_S = 900


class NotAnUploadMessage(ValueError):
    pass


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    size: int
    event_name: str


@dataclass(frozen=True)
class UploadDeadline:
    upload_id: str
    task_id: str
    not_before: int  # epoch seconds

    def to_json(self) -> str:
        return json.dumps({"kind": DEADLINE_KIND, **asdict(self)})


def deadline_for(upload: Upload, grace_s: int) -> UploadDeadline:
    if upload.task_id is None:
        raise ValueError("only an upload that starts a task has a deadline")
    return UploadDeadline(upload.id, upload.task_id, upload.url_expires_at + grace_s)


def delay_seconds(not_before: float, now: float) -> int:
    """The SQS ``DelaySeconds`` that brings a message back at ``not_before`` (or as close as SQS allows)."""
    return max(0, min(MAX_SQS_DELAY_S, math.ceil(not_before - now)))


def _object_created(record: Any) -> ObjectCreated | None:
    if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
        raise NotAnUploadMessage("a record that is not an S3 event")
    event_name = str(record.get("eventName", ""))
    if not event_name.startswith("ObjectCreated:"):
        return None  # another event type: nothing to start
    try:
        s3 = record["s3"]
        # S3 URL-encodes keys in events the way HTML forms do (a space is "+").
        key = unquote_plus(str(s3["object"]["key"]))
        return ObjectCreated(str(s3["bucket"]["name"]), key, int(s3["object"].get("size", 0)), event_name)
    except (KeyError, TypeError, ValueError):
        raise NotAnUploadMessage("an S3 event without bucket name or object key") from None


def parse_message(body: str) -> list[ObjectCreated] | UploadDeadline:
    """The objects a message says were created, or the deadline it carries; S3's test event has no objects."""
    try:
        message = json.loads(body)
    except (TypeError, json.JSONDecodeError):
        raise NotAnUploadMessage("not JSON") from None
    if not isinstance(message, dict):
        raise NotAnUploadMessage("not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    if message.get("kind") == DEADLINE_KIND:
        try:
            return UploadDeadline(str(message["upload_id"]), str(message["task_id"]), int(message["not_before"]))
        except (KeyError, TypeError, ValueError):
            raise NotAnUploadMessage("a deadline without upload_id, task_id or not_before") from None
    records = message.get("Records")
    if not isinstance(records, list):
        raise NotAnUploadMessage("neither an S3 event nor an upload deadline")
    return [created for created in map(_object_created, records) if created is not None]


def waits_for(task: Task | None, upload: Upload) -> bool:
    """Whether ``task`` is the one waiting for ``upload``: still PENDING, same tenant, input naming it."""
    return (
        task is not None
        and task.status is Status.PENDING
        and task.tenant == upload.tenant
        and upload_id_of(task.input) == upload.id
    )


def expired_error(upload: Upload) -> dict[str, Any]:
    expired = datetime.fromtimestamp(upload.url_expires_at, UTC).isoformat().replace("+00:00", "Z")
    return problem(
        "upload-expired",
        "The upload never arrived",
        408,
        f"Nothing was uploaded for upload {upload.id} before its URL expired at {expired}; "
        "create a new upload (POST /uploads) to try again.",
        upload_id=upload.id,
    )


def expire_if_waiting(upload: Upload) -> Callable[[Task], Task | None]:
    """The change failing the task that still waits for ``upload``; any other task is left alone."""

    def change(task: Task) -> Task | None:
        if not waits_for(task, upload):
            return None
        return transition(task, Status.FAILED, error=expired_error(upload), message=None)

    return change
