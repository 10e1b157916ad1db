"""The Python client SDK of taskcast: needs only ``requests`` and ``websockets`` and imports no server module.

``TaskcastClient`` submits tasks and follows them (push, with polling as the fallback); ``verify_webhook``
checks a Standard Webhooks delivery against the tenant's ``whsec_`` secret; ``WorkerClient`` is an external
worker's side, reporting on its task with the task token.
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
from taskcast_client.worker import Report, TaskEnded, WorkerClient

__all__ = [
    "Outcome",
    "Report",
    "TaskEnded",
    "TaskHandle",
    "TaskTimeout",
    "TaskcastClient",
    "TaskcastError",
    "TaskcastUnreachable",
    "WebhookRefused",
    "WorkerClient",
    "verify_webhook",
]
