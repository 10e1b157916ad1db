"""The Python client SDK of taskcast: needs only ``requests`` and ``websockets`` and imports no server module.

``TaskcastClient`` submits tasks and follows them (push, with polling as the fallback); ``verify_webhook``
checks a Standard Webhooks delivery against the tenant's ``whsec_`` secret.
"""

from taskcast_client.client import (
    Outcome,
    TaskcastClient,
    TaskcastError,
    TaskcastUnreachable,
    TaskHandle,
    TaskTimeout,
)
from taskcast_client.webhooks import WebhookRefused, verify_webhook

__all__ = [
    "Outcome",
    "TaskHandle",
    "TaskTimeout",
    "TaskcastClient",
    "TaskcastError",
    "TaskcastUnreachable",
    "WebhookRefused",
    "verify_webhook",
]
