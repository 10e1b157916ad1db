"""The task, its state machine and the messages built from it: plain data and pure functions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

PROBLEM_BASE = "https://taskcast.dev/problems"


class Status(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

# Which status may follow which. A status may also "follow" itself when only progress changes.
ALLOWED: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.PENDING, Status.RUNNING, Status.FAILED, Status.CANCELLED}),
    Status.RUNNING: frozenset({Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}


class InvalidTransition(Exception):
    """The change is not allowed from the task's current status (for example, anything after a terminal)."""

    def __init__(self, current: Status, requested: Status) -> None:
        super().__init__(f"cannot go from {current} to {requested}")
        self.current = current
        self.requested = requested


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def problem(kind: str, title: str, status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem object."""
    return {"type": f"{PROBLEM_BASE}/{kind}", "title": title, "status": status, "detail": detail, **extra}


@dataclass(frozen=True)
class Task:
    id: str
    tenant: str
    type: str
    status: Status = Status.PENDING
    version: int = 1
    progress: int = 0
    input: Any = None
    result: Any = None
    error: dict[str, Any] | None = None
    callback_url: str | None = None
    message: str | None = None
    result_ref: str | None = None  # S3 key of a result too large to keep inline
    created_at: str = field(default_factory=now_iso)
    updated_at: str = ""
    expires_at: int = 0  # epoch seconds: the DynamoDB TTL attribute
    # External jobs only: the SHA-256 of the task token's secret, and the worker's heartbeat interval.
    token_sha256: str | None = field(default=None, repr=False)
    heartbeat_s: int = 0
    # The worker function that runs it ("standard" or "large"): chosen at create from the job's memory class,
    # kept so that a task started later (by its upload's arrival) goes to the same one.
    worker_class: str = "standard"

    def __post_init__(self) -> None:
        if not self.updated_at:
            object.__setattr__(self, "updated_at", self.created_at)

    @property
    def terminal(self) -> bool:
        return self.status.terminal


def is_expired(task: Task, now: float) -> bool:
    """Past its TTL: DynamoDB deletes expired items lazily (up to days later), so every read treats them as gone.

    ``expires_at`` 0 means no TTL (a task built in memory, never stored).
    """
    return 0 < task.expires_at <= now


def transition(
    task: Task,
    status: Status,
    *,
    progress: int | None = None,
    at: str | None = None,
    **changes: Any,
) -> Task:
    """The task after one change: ``version`` + 1, ``progress`` clamped to 0–100.

    Raises ``InvalidTransition`` when ``status`` may not follow the current one, so a late RUNNING
    can never replace a terminal status. SUCCEEDED always ends at progress 100.
    """
    if status not in ALLOWED[task.status]:
        raise InvalidTransition(task.status, status)
    new_progress = task.progress if progress is None else max(0, min(100, int(progress)))
    if status is Status.SUCCEEDED:
        new_progress = 100
    return dataclasses.replace(
        task,
        status=status,
        version=task.version + 1,
        progress=new_progress,
        updated_at=at or now_iso(),
        **changes,
    )


def links(task_id: str, websocket_url: str) -> dict[str, str]:
    base = f"/tasks/{task_id}"
    return {
        "self": base,
        "result": f"{base}/result",
        "events": f"{base}/events",
        "websocket": websocket_url,
    }


def monitor(task: Task, websocket_url: str) -> dict[str, Any]:
    """The task monitor resource the REST API answers with."""
    body: dict[str, Any] = {
        "id": task.id,
        "type": task.type,
        "status": str(task.status),
        "version": task.version,
        "progress": task.progress,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "links": links(task.id, websocket_url),
    }
    if task.message:
        body["message"] = task.message
    if task.error is not None:
        body["error"] = task.error
    return body


def history_entry(task: Task) -> dict[str, Any]:
    return {
        "version": task.version,
        "status": str(task.status),
        "progress": task.progress,
        "at": task.updated_at,
        **({"error": task.error} if task.error is not None else {}),
    }


def message_from_entry(task_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The ``task.status`` message for one history entry (pushed over WebSocket and in webhooks)."""
    message: dict[str, Any] = {
        "type": "task.status",
        "task_id": task_id,
        "status": entry["status"],
        "version": entry["version"],
        "progress": entry["progress"],
        "at": entry["at"],
    }
    if entry["status"] == Status.SUCCEEDED:
        message["result_url"] = f"/tasks/{task_id}/result"
    if entry.get("error") is not None:
        message["error"] = entry["error"]
    return message


def status_message(task: Task) -> dict[str, Any]:
    """The ``task.status`` message for the task's current state."""
    return message_from_entry(task.id, history_entry(task))
