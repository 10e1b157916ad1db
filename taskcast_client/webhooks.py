"""Verifying a Standard Webhooks delivery with the standard library alone.

The signature is ``v1,<base64 HMAC-SHA256>`` over ``{webhook-id}.{webhook-timestamp}.{body}``, keyed with the
base64 secret after ``whsec_``; the header may list several (space-separated) during a secret rotation, and
one match is enough. A timestamp more than five minutes away from now is refused, so a captured delivery
cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 5 * 60


class WebhookRefused(Exception):
    """The delivery is not signed with the secret (or is malformed, stale, or from the future)."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ``ValueError`` when it is not one."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("the secret is not base64 after whsec_") from exc
    if not key:
        raise ValueError("the secret is empty")
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<signature>`` of one delivery."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def header(headers: Mapping[str, str], name: str) -> str:
    """The value of header ``name`` whatever the case of its name ("" when absent)."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), "")


def verify_webhook(
    secret: str | bytes, body: bytes, headers: Mapping[str, str], *, now: float | None = None
) -> dict[str, Any]:
    """The verified, parsed body of a delivery; ``WebhookRefused`` for anything that does not verify.

    ``secret`` is the ``whsec_`` string or the key ``secret_key`` made of it; header names are matched
    case-insensitively, as HTTP has them.
    """
    key = secret if isinstance(secret, bytes) else secret_key(secret)
    webhook_id, timestamp, signatures = (header(headers, name) for name in
                                         ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (webhook_id and timestamp and signatures):
        raise WebhookRefused("missing webhook-id, webhook-timestamp or webhook-signature")
    if not timestamp.isdigit():
        raise WebhookRefused("webhook-timestamp is not a number of seconds")
    if abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE_S:
        raise WebhookRefused("webhook-timestamp is too far from now")
    expected = sign(key, webhook_id, int(timestamp), body)
    if not any(hmac.compare_digest(expected.encode(), offered.encode()) for offered in signatures.split()):
        raise WebhookRefused("no signature matches")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise WebhookRefused("the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookRefused("the body is not a JSON object")
    return payload
