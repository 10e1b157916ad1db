"""Results an external worker uploads to S3 itself, then names at ``/succeed`` (pure decisions).

A result is a JSON document (``GET /tasks/{id}/result`` serves it as the job's result, inline or through a
presigned GET), so an uploaded result is ``application/json`` too. Its key is scoped to its task by
construction, ``results/{tenant}/{task_id}/{random}.json``: beside the Lambda worker's
``results/{tenant}/{task_id}.json``, never equal to it, and never another task's. ``/succeed`` accepts a key of
exactly that shape for its own task, so no key can reach outside the task's prefix (no ``..``, no other
tenant, no upload of ``uploads/``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from taskcast.uploads import RESULTS_PREFIX, media_type

CONTENT_TYPE = "application/json"
SUFFIX_BYTES = 16
# token_urlsafe(16) is 22 characters of the URL-safe base64 alphabet.
_SUFFIX = r"[A-Za-z0-9_-]{22}"


def task_prefix(tenant: str, task_id: str) -> str:
    return f"{RESULTS_PREFIX}{tenant}/{task_id}/"


def new_result_key(
    tenant: str, task_id: str, random_suffix: Callable[[int], str] = secrets.token_urlsafe
) -> str:
    return f"{task_prefix(tenant, task_id)}{random_suffix(SUFFIX_BYTES)}.json"


def is_task_result_key(key: str, tenant: str, task_id: str) -> bool:
    """Whether ``key`` has the shape of a key issued for this task (whoever asks, the answer depends only on the
    key and the task, so a worker learns nothing about other tasks' objects)."""
    return re.fullmatch(re.escape(task_prefix(tenant, task_id)) + _SUFFIX + r"\.json", key) is not None


def content_type_refusal(content_type: str | None) -> str | None:
    """Why an upload of this type cannot be a result; None for JSON (the default)."""
    if content_type is None or media_type(content_type) == CONTENT_TYPE:
        return None
    return f"A result is a JSON document: only {CONTENT_TYPE} can be uploaded, not {content_type}."


def object_refusal(size: int, content_type: str | None, max_bytes: int) -> tuple[str, str] | None:
    """Why the uploaded object cannot be the task's result, as (problem kind, detail); S3 does not bound a
    presigned PUT's size, and the signed type is checked again so that nothing else is ever served as JSON."""
    if size > max_bytes:
        return "result-too-large", f"The uploaded result is {size} bytes; at most {max_bytes} bytes are accepted."
    if media_type(content_type) != CONTENT_TYPE:
        return "result-not-json", f"The uploaded result is {content_type or 'untyped'}; it must be {CONTENT_TYPE}."
    return None
