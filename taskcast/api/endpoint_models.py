"""Request and response shapes of the webhook endpoint routes (limits: ``taskcast.webhooks.endpoints``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from taskcast.api.models import CALLBACK_URL_MAX, DeliveryEntry
from taskcast.webhooks.endpoints import MAX_DESCRIPTION_LENGTH, MAX_FILTER_TYPES, MAX_TYPE_LENGTH, STATUSES

StatusName = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]  # taskcast.models.Status


class EndpointFilterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    statuses: list[StatusName] | None = Field(
        default=None,
        min_length=1,
        max_length=len(STATUSES),
        description="Only changes to these statuses (all if absent)",
    )
    types: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FILTER_TYPES,
        description=f"Only tasks of these types (all if absent), names of 1 to {MAX_TYPE_LENGTH} characters",
    )


class CreateEndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=CALLBACK_URL_MAX, description="https URL (checked by the URL guard)")
    filter: EndpointFilterBody | None = Field(default=None, description="Which changes it gets (all if absent)")
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)


class UpdateEndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, min_length=1, max_length=CALLBACK_URL_MAX)
    filter: EndpointFilterBody | None = Field(default=None, description="Replaces the filter; {} for every change")
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH, description="null clears it")
    enabled: bool | None = Field(default=None, strict=True, description="false disables it; true enables it again")

    @field_validator("url", "filter", "enabled", mode="before")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        # null would read as "keep it" for url and enabled, and as "every change" for filter: refused instead.
        if value is None:
            hint = ' ({} for every change)' if info.field_name == "filter" else ""
            raise ValueError(f"{info.field_name} may not be null; leave it out to keep it{hint}")
        return value


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: str = Field(min_length=1, max_length=64, description="ISO-8601 time; deliveries logged from then on")
    only_failed: bool = Field(
        default=False, strict=True, description="Only webhooks whose last attempt failed (or was not sent)"
    )


class EndpointFilterShown(BaseModel):
    statuses: list[str] | None = None
    types: list[str] | None = None


class EndpointShown(BaseModel):
    id: str
    url: str
    filter: EndpointFilterShown
    enabled: bool
    description: str | None = None
    created_at: str
    updated_at: str
    disabled_reason: str | None = Field(default=None, description="Why it is disabled (only when it is)")
    disabled_at: str | None = None


class CreatedEndpoint(EndpointShown):
    secret: str = Field(description="whsec_ signing secret, shown only here and on rotation")


class RotatedSecret(BaseModel):
    secret: str = Field(description="The new whsec_ secret; the previous one still signs during the overlap")


class EndpointDeliveryShown(DeliveryEntry):
    """A task's delivery log entry (``GET /tasks/{id}/deliveries``), plus which task and how long it took."""

    id: str = Field(description="The delivery's id (for resend)")
    task_id: str
    webhook_id: str = Field(description="{endpoint_id}.{task_id}.{version}")
    duration_ms: int | None = None


class EndpointDeliveryPage(BaseModel):
    items: list[EndpointDeliveryShown]
    next: str | None = Field(description="Pass as ?cursor= for the next (older) page; null on the last")


class ReplayAnswer(BaseModel):
    queued: int


class TestEventAnswer(BaseModel):
    status_code: int | None = Field(description="The receiver's status code; null when it could not be reached")
    outcome: Literal["delivered", "failed"]
    error: str | None = None
