"""Request and response shapes of the REST API (the request model validates; the others document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CALLBACK_URL_MAX = 2048


class CreateTaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=64, description="A registered job type: sleep, fail, invoke, ...")
    input: Any = Field(default=None, description="Any JSON; the job's input (checked against the job's model)")
    callback_url: str | None = Field(
        default=None,
        max_length=CALLBACK_URL_MAX,
        description="https URL that receives a signed Standard Webhooks POST on every status change",
    )


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
    outcome: Literal["delivered", "retrying", "failed", "disabled"]
    error: str | None = None
