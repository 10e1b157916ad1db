"""The Standard Webhooks wire format: body, ``webhook-id`` and signed headers.

Signatures come from ``standardwebhooks.Webhook.sign`` (never a hand-rolled HMAC). During a secret
rotation a tenant has several secrets: one ``v1,…`` signature per secret, space-separated, so a receiver
holding either the old or the new secret verifies the message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

EVENT_TYPE = "task.status"
USER_AGENT = "taskcast-webhooks/1"


def webhook_id(task_id: str, version: int) -> str:
    """Stable across retries, so receivers can drop repeats."""
    return f"{task_id}.{version}"


def webhook_body(message: Mapping[str, Any]) -> str:
    """``{"type", "timestamp", "data"}``; ``timestamp`` is when the change happened, so the body is the
    same on every attempt and in every replay."""
    envelope = {"type": EVENT_TYPE, "timestamp": message["at"], "data": dict(message)}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


def signature_header(secrets: Iterable[str], message_id: str, sent_at: datetime, payload: str) -> str:
    signatures = [Webhook(secret).sign(message_id, sent_at, payload) for secret in secrets]
    if not signatures:
        raise ValueError("no webhook secret to sign with")
    return " ".join(signatures)


def signed_headers(
    secrets: Iterable[str], message_id: str, payload: str, sent_at: datetime | None = None
) -> dict[str, str]:
    """Headers for one attempt: the timestamp is the attempt's own (receivers refuse stale ones)."""
    moment = (sent_at or datetime.now(UTC)).replace(microsecond=0)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature_header(secrets, message_id, moment, payload),
    }
