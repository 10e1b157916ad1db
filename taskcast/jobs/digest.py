"""The built-in ``digest`` job: SHA-256, size and line count of an uploaded object, read streamed.

Input ``{"upload_id": "..."}``; result ``{"upload_id", "sha256", "size", "lines", "content_type",
"peak_memory_bytes"}``. ``lines`` counts newline characters plus a last line without one, so
``b"a\\nb"`` has 2 lines and ``b"a\\n"`` has 1. ``peak_memory_bytes`` is what reading the object cost
in memory (see ``memory.py``): it stays near the chunk size whatever the object's size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskcast.jobs.context import JobContext
from taskcast.jobs.memory import traced_peak
from taskcast.jobs.registry import JobFailed, JobRegistry

PROGRESS_STEP = 10  # percent between progress reports


class DigestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    upload_id: str = Field(min_length=1, max_length=64, description="An upload of the same tenant (POST /uploads)")


class Digest:
    """SHA-256, size and line count, fed chunk by chunk."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self.size = 0
        self._newlines = 0
        self._ends_with_newline = False

    def update(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._sha256.update(chunk)
        self.size += len(chunk)
        self._newlines += chunk.count(b"\n")
        self._ends_with_newline = chunk.endswith(b"\n")

    @property
    def lines(self) -> int:
        if self.size == 0:
            return 0
        return self._newlines + (0 if self._ends_with_newline else 1)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


def progress_marks(done: int, total: int, last_reported: int, step: int = PROGRESS_STEP) -> int | None:
    """The percent to report after ``done`` of ``total`` bytes, or None when it is not yet ``step`` past the
    last report; the end (100) is never reported here: SUCCEEDED says it."""
    if total <= 0:
        return None
    percent = (done * 100 // total) // step * step
    if percent >= 100 or percent < last_reported + step:
        return None
    return percent


def digest_object(chunks: Any, total: int, report: Callable[[int], None]) -> Digest:
    digest = Digest()
    reported = 0
    for chunk in chunks:
        digest.update(chunk)
        percent = progress_marks(digest.size, total, reported)
        if percent is not None:
            report(percent)
            reported = percent
    return digest


def register_digest(registry: JobRegistry) -> None:
    @registry.job("digest", input_model=DigestInput)
    def digest(job_input: DigestInput, ctx: JobContext) -> dict[str, Any]:
        with traced_peak() as peak:
            uploaded = ctx.open_upload(job_input.upload_id)
            summary = digest_object(
                uploaded.chunks(), uploaded.size, lambda percent: ctx.progress(percent, message="reading the upload")
            )
        if summary.size != uploaded.size:
            raise JobFailed(f"read {summary.size} bytes of a {uploaded.size}-byte object", kind="upload-truncated")
        return {
            "upload_id": job_input.upload_id,
            "sha256": summary.sha256,
            "size": summary.size,
            "lines": summary.lines,
            "content_type": uploaded.content_type,
            "peak_memory_bytes": peak.bytes,
        }
