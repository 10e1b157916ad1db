"""Fan-out decisions, as plain functions over data: which stream records matter, who gets a version,
and what frame goes over the wire."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskcast.models import Task, status_message
from taskcast.store import STATE, from_attributes, task_from_plain
from taskcast.subscriptions import Subscription

# API Gateway refuses @connections messages over 128 KB.
MAX_FRAME_BYTES = 128 * 1024
# The fields a task.status message can always keep: everything else may be dropped to fit a frame.
_ESSENTIAL_FIELDS = ("type", "task_id", "status", "version", "progress", "at")


class PoisonRecord(ValueError):
    """A stream record for a task's state that cannot be read; retrying it will not help."""


@dataclass(frozen=True)
class StateChange:
    """A task's state after a change that raised its version, as read from one stream record."""

    task: Task
    sequence_number: str


def parse_stream_record(record: Mapping[str, Any]) -> StateChange | None:
    """The change a DynamoDB stream record carries, or None when there is nothing to push.

    Only INSERT and MODIFY records of ``sk = "STATE"`` whose version grew are changes; history rows,
    delivery log, markers and TTL deletions are skipped. Raises ``PoisonRecord`` for a STATE record
    whose image is not a task.
    """
    if record.get("eventName") not in {"INSERT", "MODIFY"}:
        return None
    body = record.get("dynamodb") or {}
    keys = body.get("Keys") or {}
    if (keys.get("sk") or {}).get("S") != STATE:
        return None
    try:
        new = from_attributes(body["NewImage"])
        task = task_from_plain(new)
        old_version = int(from_attributes(body["OldImage"])["version"]) if body.get("OldImage") else 0
    except (KeyError, TypeError, ValueError) as error:
        raise PoisonRecord(f"unreadable task state in stream record: {type(error).__name__}: {error}") from None
    if task.version <= old_version:
        return None
    return StateChange(task=task, sequence_number=str(body.get("SequenceNumber", "")))


@dataclass(frozen=True)
class FanoutPlan:
    """Who gets one version: ``send`` now, ``wait`` until their subscribe handshake ends, then decide again."""

    send: tuple[Subscription, ...] = ()
    wait: tuple[Subscription, ...] = ()
    skipped: tuple[Subscription, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.send and not self.wait


def plan_fanout(subscriptions: Iterable[Subscription], tenant: str, version: int, now: float) -> FanoutPlan:
    """Split a task's subscriptions for ``version``.

    - another tenant's subscription (cannot happen through the handlers, checked anyway): skipped;
    - a handshake still in progress: wait, so its snapshot goes out before any live change;
    - ``after_version >= version``: skipped, the handshake already sent that version or a newer one;
    - otherwise: send.
    """
    send: list[Subscription] = []
    wait: list[Subscription] = []
    skipped: list[Subscription] = []
    for subscription in subscriptions:
        if subscription.tenant != tenant:
            skipped.append(subscription)
        elif subscription.pending(now):
            wait.append(subscription)
        elif subscription.after_version >= version:
            skipped.append(subscription)
        else:
            send.append(subscription)
    return FanoutPlan(send=tuple(send), wait=tuple(wait), skipped=tuple(skipped))


def needs_sending(sent_version: int, version: int) -> bool:
    """False when the fan-out marker shows this version (or a later one) already went out."""
    return version > sent_version


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def frame(message: Mapping[str, Any], limit: int = MAX_FRAME_BYTES) -> bytes:
    """The bytes posted to a connection, always under API Gateway's frame limit.

    A message too large (a long ``error``) is replaced by a small one without the bulky fields,
    marked ``truncated`` and pointing to ``/tasks/{id}`` where the whole state can be read.
    """
    data = encode(message)
    if len(data) <= limit:
        return data
    small = {key: message[key] for key in _ESSENTIAL_FIELDS if key in message}
    small["truncated"] = True
    small["task_url"] = f"/tasks/{message.get('task_id', '')}"
    if "result_url" in message:
        small["result_url"] = message["result_url"]
    return encode(small)


def message_for(change: StateChange) -> dict[str, Any]:
    return status_message(change.task)
