"""``POST /task-tokens/{token}/{progress|heartbeat|succeed|fail|result-upload}``: an external worker's reports,
and where it uploads a result too large to send inline.

The token is the only credential (no API key, no authorizer: the template routes these paths with
``Authorizer: NONE``). A malformed, unknown, expired or forged token, or another task's, answers the same
``404``; a task that has ended answers ``410`` and says whether it was cancelled. Tokens never reach a log:
the problems name no token and the routes log nothing of the path.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from taskcast.api.deps import ApiDeps
from taskcast.api.models import (
    FailReport,
    HeartbeatReport,
    Problem,
    ProgressReport,
    ReportAnswer,
    ResultUploadAnswer,
    ResultUploadRequest,
    SucceedReport,
)
from taskcast.api.problems import ProblemError
from taskcast.api.responses import JSON
from taskcast.api.routing import RouteTable
from taskcast.api.uploading import iso_time
from taskcast.external_reports import TaskEnded
from taskcast.external_workers import ExternalWorkers, ResultNotStored, ResultRefused, ResultUpload, TokenRefused
from taskcast.models import Status, Task

TAGS = ["external workers"]
PREFIX = "/task-tokens/"
PROBLEM = {"application/problem+json": {"model": Problem}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Taken; the task's status and version now", "content": {JSON: {"model": ReportAnswer}}},
    400: {"description": "The body is not valid for this report", "content": PROBLEM},
    404: {"description": "No task for this token (malformed, unknown, expired or forged: all alike)",
          "content": PROBLEM},
    410: {"description": "The task has ended; cancel_requested says whether it was cancelled", "content": PROBLEM},
}


def token_not_found() -> ProblemError:
    return ProblemError(404, "task-token-not-found", "Task token not found", "No task answers to this token.")


def task_ended(task: Task) -> ProblemError:
    cancelled = task.status is Status.CANCELLED
    return ProblemError(
        410,
        "task-ended",
        "The task has ended",
        "The task was cancelled: stop working on it." if cancelled else f"The task has ended {task.status}.",
        task_status=str(task.status),
        version=task.version,
        cancel_requested=cancelled,
    )


def result_not_stored() -> ProblemError:
    return ProblemError(
        503, "result-not-stored", "The result could not be stored", "Storing the result failed; retry.",
        headers={"Retry-After": "1"},
    )


def result_refused(refused: ResultRefused) -> ProblemError:
    titles = {
        "result-missing": "No uploaded result",
        "result-key-refused": "Not this task's result key",
        "result-too-large": "Uploaded result too large",
        "result-not-json": "Uploaded result is not JSON",
        "unsupported-result-type": "Results are JSON",
    }
    return ProblemError(400, refused.kind, titles.get(refused.kind, "Result refused"), refused.detail)


def upload_answer(upload: ResultUpload, max_size: int) -> Response[Any]:
    body = {
        "upload_url": upload.url,
        "method": "PUT",
        "headers": {"Content-Type": upload.content_type},
        "result_key": upload.key,
        "expires_at": iso_time(upload.expires_at),
        "max_size": max_size,
    }
    return Response(status_code=201, content_type=JSON, body=body, headers={"Cache-Control": "no-store"})


def answer(task: Task) -> Response[Any]:
    body = {"status": str(task.status), "version": task.version, "cancel_requested": False}
    return Response(status_code=200, content_type=JSON, body=body, headers={"Cache-Control": "no-store"})


def register_task_token_routes(app: APIGatewayRestResolver, routes: RouteTable) -> None:
    def workers() -> ExternalWorkers:
        return cast(ApiDeps, app.context["deps"]).external

    def authenticated(token: str, apply: Any) -> Any:
        external = workers()
        try:
            return apply(external, external.authenticate(token))
        except TokenRefused:
            raise token_not_found() from None
        except TaskEnded as ended:
            raise task_ended(ended.task) from None
        except ResultRefused as refused:
            raise result_refused(refused) from None
        except ResultNotStored:
            raise result_not_stored() from None

    def report(token: str, apply: Any) -> Response[Any]:
        return answer(authenticated(token, apply))

    @routes.route(
        f"{PREFIX}<token>/heartbeat",
        "POST",
        summary="An external worker is alive",
        description=(
            "Call at least every `heartbeat_s` seconds (from the job message). The first report of a task moves it "
            "to RUNNING; later heartbeats write no version. A cancelled task answers 410 with `cancel_requested`."
        ),
        tags=TAGS,
        responses=RESPONSES,
    )
    def heartbeat(token: str, request: Annotated[HeartbeatReport | None, Body()] = None) -> Response[Any]:
        return report(token, lambda external, task: external.heartbeat(task))

    @routes.route(
        f"{PREFIX}<token>/progress",
        "POST",
        summary="An external worker's progress",
        description="Writes a new version with `progress` (0-100) and `message`; counts as a heartbeat.",
        tags=TAGS,
        responses=RESPONSES,
    )
    def progress(token: str, request: ProgressReport) -> Response[Any]:
        return report(token, lambda external, task: external.progress(task, request.progress, request.message))

    @routes.route(
        f"{PREFIX}<token>/succeed",
        "POST",
        summary="An external worker's result",
        description=(
            "Ends the task SUCCEEDED with exactly one of `result` (any JSON, within the inline body limit; a result "
            "too large for the task record is kept in S3 and GET /tasks/{id}/result answers 303 to it) and "
            "`result_key` (from POST /task-tokens/{token}/result-upload, once the result is PUT there: "
            "GET /tasks/{id}/result answers 303 to it). A key not issued for this task, or with nothing uploaded "
            "under it (`/result-missing`), answers 400 and the task stays as it was."
        ),
        tags=TAGS,
        responses=RESPONSES,
    )
    def succeed(token: str, request: SucceedReport) -> Response[Any]:
        if request.result_key is not None:
            key = request.result_key
            return report(token, lambda external, task: external.succeed_with_upload(task, key))
        return report(token, lambda external, task: external.succeed(task, request.result))

    @routes.route(
        f"{PREFIX}<token>/result-upload",
        "POST",
        summary="Where an external worker uploads a large result",
        description=(
            "A presigned S3 `PUT` (send the `headers` given) for a JSON result of at most `max_size` bytes, valid "
            "until `expires_at`; then end the task with POST /task-tokens/{token}/succeed "
            '`{"result_key": ...}`. Only `application/json` is taken: a result is a JSON document. Counts as '
            "a heartbeat."
        ),
        tags=TAGS,
        responses={
            **{status: described for status, described in RESPONSES.items() if status != 200},
            201: {"description": "Where and how to upload the result", "content": {JSON: {
                "model": ResultUploadAnswer}}},
            503: {"description": "No bucket for results, or the URL could not be prepared", "content": PROBLEM},
        },
    )
    def result_upload(token: str, request: Annotated[ResultUploadRequest | None, Body()] = None) -> Response[Any]:
        content_type = (request or ResultUploadRequest()).content_type
        upload = authenticated(token, lambda external, task: external.result_upload(task, content_type))
        return upload_answer(upload, workers().max_result_upload_bytes)

    @routes.route(
        f"{PREFIX}<token>/fail",
        "POST",
        summary="An external worker's failure",
        description=(
            "Ends the task FAILED with `problem` (RFC 9457) as its `error`; a bare `type` such as `corrupt-video` "
            "becomes `https://taskcast.dev/problems/corrupt-video`."
        ),
        tags=TAGS,
        responses=RESPONSES,
    )
    def fail(token: str, request: Annotated[FailReport | None, Body()] = None) -> Response[Any]:
        reported = (request or FailReport()).problem.model_dump(exclude_none=True)
        return report(token, lambda external, task: external.fail(task, reported))
