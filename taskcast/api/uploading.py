"""``POST /uploads``: declare an upload, presign where it goes, and optionally create the task that
starts once it lands (PENDING, "waiting for upload", with a deadline after which it fails)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskcast.api.creating import abandon, check_request
from taskcast.api.deps import ApiDeps
from taskcast.api.models import CreateTaskRequest, CreateUploadRequest
from taskcast.api.problems import ProblemError
from taskcast.models import Task, monitor
from taskcast.presign import UploadTarget, presign_upload
from taskcast.settings import Settings
from taskcast.upload_events import deadline_for, delay_seconds
from taskcast.uploads import WAITING_FOR_UPLOAD, Upload

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedUpload:
    upload: Upload
    target: UploadTarget
    task: Task | None = None


def iso_time(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def new_upload(
    tenant: str, request: CreateUploadRequest, settings: Settings, now: int, upload_id: str, task_id: str | None
) -> Upload:
    """The declaration of an upload; a declared size over the maximum is refused."""
    if request.size is not None and request.size > settings.max_upload_bytes:
        raise ProblemError(
            400,
            "upload-too-large",
            "Upload too large",
            f"The declared size is {request.size} bytes; uploads are limited to {settings.max_upload_bytes} bytes.",
        )
    return Upload(
        id=upload_id,
        tenant=tenant,
        content_type=request.content_type,
        size=request.size,
        max_size=request.size if request.size is not None else settings.max_upload_bytes,
        url_expires_at=now + settings.upload_url_ttl_s,
        task_id=task_id,
    )


def answer_body(created: CreatedUpload, settings: Settings) -> dict[str, Any]:
    body: dict[str, Any] = {
        "upload_id": created.upload.id,
        **created.target.as_dict(),
        "expires_at": iso_time(created.target.expires_at),
        "max_size": created.upload.max_size,
    }
    if created.task is not None:
        body["task"] = monitor(created.task, settings.websocket_url)
    return body


def create_upload(tenant: str, request: CreateUploadRequest, deps: ApiDeps) -> CreatedUpload:
    upload_id = str(uuid.uuid4())
    task_request = None
    if request.task is not None:
        task_request = CreateTaskRequest(
            type=request.task.type, input={"upload_id": upload_id}, callback_url=request.task.callback_url
        )
        check_request(task_request, deps)  # the job must take an upload; the callback must be allowed
        if deps.registry.get(task_request.type).external is not None:
            # Such a task starts when its file lands, by invoking the Lambda worker, which never runs these.
            raise ProblemError(
                400, "external-job-upload", "External jobs do not start from an upload",
                f"Job {task_request.type!r} runs in an external worker: upload the file first (POST /uploads "
                "without \"task\"), then create the task with {\"upload_id\": ...} as its input.",
            )
    now = int(deps.wall_clock())
    task_id = str(uuid.uuid4()) if task_request else None
    upload = deps.uploads.create(new_upload(tenant, request, deps.settings, now, upload_id, task_id))
    target = presign_upload(deps.s3, deps.settings.results_bucket, upload, now)
    if task_request is None:
        return CreatedUpload(upload, target)
    task = deps.store.create(
        Task(
            id=str(task_id),
            tenant=tenant,
            type=task_request.type,
            input=task_request.input,
            callback_url=task_request.callback_url,
            message=WAITING_FOR_UPLOAD,
            worker_class=deps.registry.get(task_request.type).memory,
        )
    )
    schedule_deadline(upload, task, deps, now)
    return CreatedUpload(upload, target, task)


def schedule_deadline(upload: Upload, task: Task, deps: ApiDeps, now: int) -> None:
    """Without its deadline a task could wait forever for a file that never comes: fail it now instead."""
    deadline = deadline_for(upload, deps.settings.upload_grace_s)
    try:
        deps.deadlines.send(deadline, delay_seconds(deadline.not_before, now))
    except Exception as error:
        logger.error("could not schedule the upload deadline of task %s: %s", task.id, type(error).__name__)
        raise abandon(
            deps, task, "upload-unavailable", "Uploads unavailable", "The upload could not be prepared"
        ) from None
