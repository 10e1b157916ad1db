"""Creating a task: check the request, store the task, start the worker — at most once per Idempotency-Key."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from taskcast.api.deps import ApiDeps
from taskcast.api.idempotency import key_refusal
from taskcast.api.models import CreateTaskRequest
from taskcast.api.problems import ProblemError, task_not_found
from taskcast.jobs import InvalidJobInput, UnknownJob
from taskcast.jobs.registry import ExternalJob
from taskcast.models import Status, Task, problem, transition
from taskcast.task_tokens import issue
from taskcast.upload_queue import object_exists
from taskcast.uploads import upload_id_of
from taskcast.webhooks.delivery import CallbackRefused, check_callback_url

logger = logging.getLogger(__name__)


def new_task_id() -> str:
    return str(uuid.uuid4())


def check_upload_input(tenant: str, request: CreateTaskRequest, deps: ApiDeps) -> None:
    """An input naming an upload must name one of the tenant's own, already uploaded."""
    upload_id = upload_id_of(request.input)
    if upload_id is None:
        return
    upload = deps.uploads.get_for_tenant(upload_id, tenant)
    if upload is None:
        # The same answer for an unknown id and another tenant's: existence never leaks.
        raise ProblemError(400, "unknown-upload", "Unknown upload", f"There is no upload {upload_id!r}.")
    if not object_exists(deps.s3, deps.settings.results_bucket, upload.key):
        raise ProblemError(
            409,
            "upload-not-received",
            "Nothing uploaded yet",
            f"Upload {upload_id!r} has not been received. Send the file to its URL first, or create the task "
            "with the upload (POST /uploads with \"task\") so that it starts once the file lands.",
        )


def check_request(request: CreateTaskRequest, deps: ApiDeps) -> None:
    """Refuse, with a 400 problem, what could never run: unknown job, bad input, forbidden callback."""
    try:
        deps.registry.validate(request.type, request.input, deps.settings)
    except UnknownJob as error:
        raise ProblemError(400, "unknown-job-type", "Unknown job type", str(error)) from None
    except InvalidJobInput as error:
        raise ProblemError(400, error.kind, error.title, str(error)) from None
    if deps.registry.get(request.type).external is not None:
        check_job_message_size(request)
    if request.callback_url is not None:
        try:
            check_callback_url(
                request.callback_url,
                allow_loopback=deps.settings.allow_loopback_callbacks,
                resolve=deps.resolve_host,
            )
        except CallbackRefused as error:
            raise ProblemError(400, "callback-refused", "Callback URL refused", str(error)) from None


# SQS takes messages of up to 256 KiB; the job message adds the token and a few fields to the input.
EXTERNAL_INPUT_LIMIT_BYTES = 256 * 1024 - 2048


def check_job_message_size(request: CreateTaskRequest) -> None:
    """An external job's input travels in one SQS message: refuse what would not fit, before storing anything."""
    size = len(json.dumps(request.input).encode())
    if size > EXTERNAL_INPUT_LIMIT_BYTES:
        raise ProblemError(
            413, "payload-too-large", "Payload too large",
            f"The input is {size} bytes; an external job's input travels in one SQS message and is limited to "
            f"{EXTERNAL_INPUT_LIMIT_BYTES} bytes. Upload it with POST /uploads and name the upload_id as the input.",
        )


def dispatch_failed(task: Task) -> Task | None:
    if task.status is not Status.PENDING:
        return None  # a worker got it after all
    error = problem("dispatch-failed", "The worker could not be started", 503, "The task was never started; retry.")
    return transition(task, Status.FAILED, error=error)


def store_and_start(tenant: str, request: CreateTaskRequest, deps: ApiDeps) -> Task:
    spec = deps.registry.get(request.type)
    if spec.external is not None:
        return store_and_hand_off(tenant, request, spec.external, deps)
    task = deps.store.create(
        Task(
            id=new_task_id(),
            tenant=tenant,
            type=request.type,
            input=request.input,
            callback_url=request.callback_url,
            worker_class=spec.memory,
        )
    )
    try:
        deps.invoke_worker(task.id, task.worker_class)
    except Exception as error:
        # Never leave a task PENDING that no worker will ever pick up.
        logger.error("could not start the worker for task %s: %s", task.id, type(error).__name__)
        raise abandon(
            deps, task, "worker-unavailable", "Worker unavailable", "The worker could not be started"
        ) from None
    return task


def store_and_hand_off(tenant: str, request: CreateTaskRequest, external: ExternalJob, deps: ApiDeps) -> Task:
    """An external job's task: stored with its token's hash, then handed to its worker (the external jobs queue,
    an event or an invoke, as the job declares); it stays PENDING until the worker reports."""
    task_id = new_task_id()
    issued = issue(task_id)
    task = deps.store.create(
        Task(
            id=task_id,
            tenant=tenant,
            type=request.type,
            input=request.input,
            callback_url=request.callback_url,
            token_sha256=issued.secret_sha256,
            heartbeat_s=external.heartbeat_s,
        )
    )
    try:
        deps.external.hand_off(task, issued.token, external)
    except Exception as error:
        logger.error("could not hand task %s to its external worker (%s): %s", task.id, external.handoff,
                     type(error).__name__)
        raise abandon(
            deps, task, "external-handoff-failed", "External worker unreachable",
            "The task could not be handed to its external worker",
        ) from None
    return task


def abandon(deps: ApiDeps, task: Task, kind: str, title: str, what_failed: str) -> ProblemError:
    """Mark a task that can never start FAILED and build the 503 that tells the client to retry."""
    deps.store.update(task.id, dispatch_failed)
    return ProblemError(
        503,
        kind,
        title,
        f"{what_failed}; task {task.id} was marked FAILED. Retry the request.",
        headers={"Retry-After": str(deps.settings.retry_after_s)},
        task_id=task.id,
    )


def create_task(
    tenant: str,
    request: CreateTaskRequest,
    idempotency_key: str | None,
    deps: ApiDeps,
    lambda_context: Any = None,
) -> Task:
    """The task as created (PENDING), or, for a replayed Idempotency-Key, as it is now."""
    check_request(request, deps)
    check_upload_input(tenant, request, deps)
    if idempotency_key is None:
        return store_and_start(tenant, request, deps)
    refusal = key_refusal(idempotency_key)
    if refusal:
        raise ProblemError(400, "invalid-idempotency-key", "Invalid Idempotency-Key", refusal)
    created: list[Task] = []

    def create_once() -> str:
        created.append(store_and_start(tenant, request, deps))
        return created[0].id

    task_id = deps.idempotency.run(
        tenant, idempotency_key, request.model_dump(mode="json"), create_once, lambda_context
    )
    if created:
        return created[0]
    task = deps.store.get(task_id)
    if task is None:
        raise task_not_found(task_id)
    return task
