"""``POST /uploads``: a presigned S3 URL for an input over the inline limit, optionally with its task."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from taskcast.api.deps import ApiDeps
from taskcast.api.models import CreateUploadRequest, Problem, UploadAnswer
from taskcast.api.problems import unauthorized
from taskcast.api.request_info import tenant_of
from taskcast.api.responses import JSON, task_headers, task_location
from taskcast.api.routing import RouteTable
from taskcast.api.uploading import answer_body, create_upload

PROBLEM = {"application/problem+json": {"model": Problem}}


def register_upload_routes(app: APIGatewayRestResolver, routes: RouteTable) -> None:
    @routes.route(
        "/uploads",
        "POST",
        summary="Upload a large input straight to S3",
        description=(
            "Answers where to send the file: with `size`, a presigned `PUT` of exactly that size and content type "
            "(send the `headers` given); without it, a presigned `POST` form (`fields`, then the file) of at most "
            "`max_size` bytes. The URL is valid until `expires_at`. Name the upload as a task's input "
            '(`{"upload_id": ...}`) once the file is uploaded, or pass `task` here: the task is created now, '
            "PENDING with the message \"waiting for upload\", starts by itself when the file lands, and fails "
            "(`/upload-expired`) if nothing arrives shortly after the URL expires. Then the answer carries the "
            "task monitor and `Location` names the task."
        ),
        tags=["uploads"],
        responses={
            201: {"description": "Where and how to upload (and the task, when asked)", "content": {
                JSON: {"model": UploadAnswer}}},
            400: {"description": "Bad content type or size, unknown job, refused callback URL", "content": PROBLEM},
            503: {"description": "The upload could not be prepared", "content": PROBLEM},
        },
    )
    def create(request: CreateUploadRequest) -> Response[Any]:
        tenant = tenant_of(app.current_event.raw_event)
        if tenant is None:
            raise unauthorized()
        deps: ApiDeps = app.context["deps"]
        created = create_upload(tenant, request, deps)
        headers = {"Cache-Control": "no-store"}
        if created.task is not None:
            headers = {**task_headers(created.task, deps.settings), "Location": task_location(created.task.id)}
        return Response(status_code=201, content_type=JSON, body=answer_body(created, deps.settings), headers=headers)
