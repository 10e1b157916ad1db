"""The subscribe handshake, built so that a connection never sees a gap or a version going backwards.

1. Check the task belongs to the tenant (unknown and foreign tasks look the same), then the limits
   (subscriptions per connection, subscribers per task): only an owner learns a task's subscriber count.
2. Write the subscription as *pending* (``SubscriptionStore.begin``).
3. Read the task (after the write) and send the snapshot: the current state, or with
   ``since_version`` every history entry after it.
4. Confirm: ``after_version`` = the last version sent, pending removed, provided the handshake is
   still within its hold (``HANDSHAKE_HOLD_S``). One that is not failed: the subscription is removed and
   the client is told to subscribe again (``HandshakeTooSlow``).

Why it holds: a change written before step 2 is seen by the read in step 3 (strongly consistent),
so the snapshot covers it. A change the consumer handles after step 2 finds the subscription pending
and waits until step 4 before sending (``taskcast.push.fanout``), then sends only versions above
``after_version``: live messages always follow the snapshot, and nothing is missed in between. A
subscription whose hold ended unconfirmed is sent nothing: its handshake failed (or died), and sending
live changes to it could put them ahead of the snapshot of the client's next subscribe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskcast.limits import LimitExceeded, SubscriptionLimits
from taskcast.models import message_from_entry, status_message
from taskcast.push.fanout import frame
from taskcast.store import SubscriptionStore, TaskStore


class TaskNotFound(LookupError):
    """No such task for this tenant (it does not exist or belongs to another tenant)."""


class HandshakeTooSlow(TimeoutError):
    """The snapshot took longer than the handshake's hold: the subscription was dropped, subscribe again."""


class SubscriptionRefused(Exception):
    """A limit refuses this subscription; the connection gets an ``error`` frame and stays open."""

    def __init__(self, refusal: LimitExceeded) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def take_slots(
    subscriptions: SubscriptionStore, limits: SubscriptionLimits, task_id: str, connection_id: str, tenant: str
) -> bool:
    """Count a new subscription against the limits, or raise ``SubscriptionRefused``; True if slots were taken.

    Two conditional writes: the connection's count (on its lease) and the task's counter; the
    subscription's removal gives both back. Subscribing again to a task the connection already follows
    adds nothing and is never refused.
    """
    if not subscriptions.take_connection_slot(connection_id, tenant, limits.per_connection):
        refusal = limits.connection_refusal()
    elif not subscriptions.take_subscriber_slot(task_id, limits.per_task):
        subscriptions.give_back_connection_slot(connection_id, tenant)
        refusal = limits.task_refusal()
    else:
        return True
    # Only a refusal pays for this read: the common case needs no existence check.
    if subscriptions.get(task_id, connection_id) is None:
        raise SubscriptionRefused(refusal)
    return False


@dataclass(frozen=True)
class SubscribeResult:
    sent_versions: tuple[int, ...]
    after_version: int
    connection_gone: bool = False


# Sends one frame to the subscribing connection; returns False when the connection is gone.
Send = Callable[[bytes], bool]


def snapshot_messages(tasks: TaskStore, task_id: str, since_version: int | None) -> tuple[list[dict[str, Any]], int]:
    """The messages a new subscription starts with, and the last version among them."""
    if since_version is None:
        task = tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return [status_message(task)], task.version
    entries = tasks.history(task_id, after_version=since_version)
    if entries:
        return [message_from_entry(task_id, entry) for entry in entries], int(entries[-1]["version"])
    # Nothing newer: live changes follow. A since_version beyond the task's own (a confused client)
    # must not hold back the versions still to come.
    task = tasks.get(task_id)
    if task is None:
        raise TaskNotFound(task_id)
    return [], min(since_version, task.version)


def subscribe(
    *,
    tasks: TaskStore,
    subscriptions: SubscriptionStore,
    send: Send,
    task_id: str,
    connection_id: str,
    tenant: str,
    since_version: int | None = None,
    limits: SubscriptionLimits,
) -> SubscribeResult:
    if tasks.get_for_tenant(task_id, tenant) is None:
        raise TaskNotFound(task_id)
    taken = take_slots(subscriptions, limits, task_id, connection_id, tenant)
    begun = subscriptions.begin(task_id, connection_id, tenant, slot_taken=taken)
    try:
        messages, last = snapshot_messages(tasks, task_id, since_version)
        sent: list[int] = []
        for message in messages:
            if not send(frame(message)):
                subscriptions.remove(task_id, connection_id)
                return SubscribeResult(tuple(sent), last, connection_gone=True)
            sent.append(int(message["version"]))
    except BaseException:
        # Leave nothing half-made: a pending subscription would hold live changes back for a while.
        subscriptions.remove(task_id, connection_id)
        raise
    if not subscriptions.confirm(begun, last):
        current = subscriptions.get(task_id, connection_id)
        if current is None or current.pending_until != begun.pending_until:
            # Unsubscribed, disconnected or subscribed again meanwhile: nothing of this handshake remains.
            return SubscribeResult(tuple(sent), last)
        subscriptions.remove(task_id, connection_id)
        raise HandshakeTooSlow(task_id)
    return SubscribeResult(tuple(sent), last)
