"""Request and response shapes of the REST API (the request model validates; the others document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from taskcast.webhooks.format import Outcome

CALLBACK_URL_MAX = 2048
# RFC 9110 media type: type "/" subtype, then optional "; name=value" parameters (token values only).
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
CONTENT_TYPE_PATTERN = rf"^{_TOKEN}/{_TOKEN}( ?; ?{_TOKEN}={_TOKEN})*$"


class CreateTaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=64, description="A registered job type: sleep, fail, invoke, ...")
    input: Any = Field(default=None, description="Any JSON; the job's input (checked against the job's model)")
    callback_url: str | None = Field(
        default=None,
        max_length=CALLBACK_URL_MAX,
        description="https URL that receives a signed Standard Webhooks POST on every status change",
    )


class UploadTaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=64, description="A job type that takes an upload, e.g. digest")
    callback_url: str | None = Field(default=None, max_length=CALLBACK_URL_MAX, description="As on POST /tasks")


class CreateUploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content_type: str = Field(
        max_length=255, pattern=CONTENT_TYPE_PATTERN, description="The media type the file is sent with"
    )
    size: int | None = Field(
        default=None,
        ge=0,
        description="The file's exact size in bytes: the URL is a PUT that accepts only that size. "
        "Without it, a POST form (fields) that accepts up to the maximum upload size.",
    )
    task: UploadTaskRequest | None = Field(
        default=None, description="A task to create now, PENDING, that starts by itself once the file lands"
    )


class CreateWsTicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_seconds: int = Field(
        default=60, ge=1, le=300, strict=True, description="How long the ticket stays usable, in seconds (1-300)"
    )


class WsTicket(BaseModel):
    ticket: str = Field(description="Opaque; connect once with ?ticket=<ticket> before expires_at")
    expires_at: str = Field(description="RFC 3339 UTC time after which the ticket is refused")


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str


class TaskLinks(BaseModel):
    self: str
    result: str
    events: str
    websocket: str


class TaskMonitor(BaseModel):
    id: str
    type: str
    status: Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
    version: int
    progress: int = Field(ge=0, le=100)
    created_at: str
    updated_at: str
    message: str | None = None
    error: Problem | None = None
    links: TaskLinks


class HistoryEntry(BaseModel):
    version: int
    status: str
    progress: int
    at: str
    error: Problem | None = None


class DeliveryEntry(BaseModel):
    webhook_id: str
    version: int
    attempt: int
    status_code: int | None
    at: str
    outcome: Outcome
    error: str | None = None


class UploadAnswer(BaseModel):
    upload_id: str
    method: Literal["PUT", "POST"]
    url: str
    headers: dict[str, str] | None = Field(default=None, description="PUT: send exactly these headers")
    fields: dict[str, str] | None = Field(default=None, description="POST: the form fields, then the file last")
    expires_at: str = Field(description="When the URL stops being accepted (ISO 8601)")
    max_size: int = Field(description="The largest file accepted, in bytes")
    task: TaskMonitor | None = None


# --- external workers' reports (POST /task-tokens/{token}/...) ----------------------------------------

MESSAGE_MAX = 1000


class ProgressReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    progress: float = Field(ge=0, le=100, description="Percent done, 0-100 (SUCCEEDED reports 100 by itself)")
    message: str | None = Field(default=None, max_length=MESSAGE_MAX, description="What the worker is doing")


class HeartbeatReport(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SucceedReport(BaseModel):
    """Exactly one of ``result`` (inline) and ``result_key`` (an uploaded result)."""

    model_config = ConfigDict(extra="forbid")
    result: Any = Field(default=None, description="Any JSON: the task's result, as GET /tasks/{id}/result answers")
    result_key: str | None = Field(
        default=None, max_length=1024,
        description="The result_key of POST /task-tokens/{token}/result-upload, once the result is PUT there",
    )

    @model_validator(mode="after")
    def exactly_one(self) -> SucceedReport:
        if len({"result", "result_key"} & self.model_fields_set) != 1:
            raise ValueError("send exactly one of result and result_key")
        if "result_key" in self.model_fields_set and self.result_key is None:
            raise ValueError("result_key must be a string")
        return self


class ResultUploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content_type: str | None = Field(
        default=None, max_length=200, pattern=CONTENT_TYPE_PATTERN,
        description="application/json (the default, and the only type taken): a result is a JSON document",
    )


class ResultUploadAnswer(BaseModel):
    upload_url: str = Field(description="A presigned S3 URL: PUT the result there, with exactly these headers")
    method: Literal["PUT"]
    headers: dict[str, str]
    result_key: str = Field(description="Name it at POST /task-tokens/{token}/succeed once uploaded")
    expires_at: str = Field(description="When the URL stops being accepted (ISO 8601)")
    max_size: int = Field(description="The largest result accepted, in bytes (checked at succeed)")


class WorkerProblem(BaseModel):
    """What went wrong, as an RFC 9457 problem; a bare ``type`` (``corrupt-video``) becomes
    ``https://taskcast.dev/problems/corrupt-video``. Other members are kept in the task's ``error``."""

    model_config = ConfigDict(extra="allow")
    type: str | None = Field(default=None, max_length=200, pattern=r"^\S+$")
    title: str | None = Field(default=None, max_length=200)
    status: int | None = Field(default=None, ge=400, le=599)
    detail: str | None = Field(default=None, max_length=4000)


class FailReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    problem: WorkerProblem = Field(default_factory=WorkerProblem)


class ReportAnswer(BaseModel):
    status: Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
    version: int
    cancel_requested: bool = Field(
        description="Always false in a 200: a cancelled task answers 410 with cancel_requested true"
    )
