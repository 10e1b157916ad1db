"""``WorkerClient``: what an external worker needs to report on its task with the task token alone.

The calls are plain HTTP (``POST /task-tokens/{token}/{heartbeat|progress|succeed|fail|result-upload}``, see
``docs/jobs.md``); this is the Python face of them. Never log the token: it is the task's credential.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

from taskcast_client.client import REQUEST_TIMEOUT_S, TaskcastError, TaskcastUnreachable, problem_from_response

_NO_RESULT: Any = object()


class TaskEnded(TaskcastError):
    """The task has ended (410): stop working on it. ``cancelled`` says whether its owner cancelled it."""

    @property
    def cancelled(self) -> bool:
        return bool(self.problem.get("cancel_requested"))


@dataclass(frozen=True)
class Report:
    status: str
    version: int
    cancel_requested: bool


class WorkerClient:
    """Reports on one task, authenticated by its task token (from the job message), not by an API key."""

    def __init__(
        self,
        token: str,
        base_url: str,
        session: requests.Session | None = None,
        *,
        request_timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        if not token or not base_url:
            raise ValueError("token and base_url are required")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.request_timeout = request_timeout

    def __repr__(self) -> str:  # never show the token
        return f"WorkerClient({self.base_url!r})"

    def heartbeat(self) -> bool:
        """Tell taskcast the worker is alive; True when the task was cancelled and the worker should stop.
        Raises ``TaskEnded`` when the task ended otherwise (it timed out, say)."""
        try:
            self._post("heartbeat", {})
        except TaskEnded as ended:
            if ended.cancelled:
                return True
            raise
        return False

    def progress(self, percent: float, message: str | None = None) -> Report:
        """A new version with ``percent`` (0-100) done; counts as a heartbeat."""
        body: dict[str, Any] = {"progress": percent}
        if message is not None:
            body["message"] = message
        return self._post("progress", body)

    def succeed(self, result: Any = _NO_RESULT, *, result_key: str | None = None) -> Report:
        """End the task SUCCEEDED with ``result`` (JSON, sent inline), or with ``result_key`` from
        ``upload_result`` for a result too large to send; ``succeed()`` alone is a ``null`` result."""
        if result_key is not None:
            if result is not _NO_RESULT:
                raise ValueError("pass exactly one of result and result_key")
            return self._post("succeed", {"result_key": result_key})
        return self._post("succeed", {"result": None if result is _NO_RESULT else result})

    def upload_result(self, data: bytes | Any) -> str:
        """Upload a result to S3 (``bytes``: an already encoded JSON document; anything else is encoded as JSON)
        and return its key, for ``succeed(result_key=...)``. Counts as a heartbeat."""
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        upload = self._call("result-upload", {}, expected=201)
        try:
            response = self.session.put(
                upload["upload_url"], data=body, headers=upload["headers"], timeout=self.request_timeout
            )
        except requests.RequestException as error:
            raise TaskcastUnreachable(
                {"title": "S3 unreachable", "detail": f"PUT of the result failed: {type(error).__name__}"}
            ) from None
        if response.status_code // 100 != 2:
            # S3 answers XML; its code (SignatureDoesNotMatch, AccessDenied: an expired URL) is enough to act on.
            raise TaskcastError(
                {"title": "Result upload refused", "detail": f"S3 answered {response.status_code}: "
                 f"{response.text[:300]}"},
                response.status_code,
            )
        return str(upload["result_key"])

    def fail(self, detail: str, type: str = "job-failed", title: str | None = None, **extra: Any) -> Report:  # noqa: A002
        """End the task FAILED with a problem; a bare ``type`` becomes ``https://taskcast.dev/problems/<type>``."""
        problem: dict[str, Any] = {"type": type, "detail": detail, **extra}
        if title is not None:
            problem["title"] = title
        return self._post("fail", {"problem": problem})

    def _post(self, kind: str, body: dict[str, Any]) -> Report:
        answer = self._call(kind, body)
        return Report(str(answer["status"]), int(answer["version"]), bool(answer.get("cancel_requested")))

    def _call(self, kind: str, body: dict[str, Any], expected: int = 200) -> dict[str, Any]:
        url = f"{self.base_url}/task-tokens/{self._token}/{kind}"
        try:
            response = self.session.post(url, json=body, timeout=self.request_timeout)
        except requests.RequestException as error:
            # The exception's text would quote the URL, and the URL holds the token.
            raise TaskcastUnreachable(
                {"title": "taskcast unreachable", "detail": f"POST .../{kind} failed: {type(error).__name__}"}
            ) from None
        if response.status_code == 410:
            raise TaskEnded(problem_from_response(response), 410)
        if response.status_code != expected:
            raise TaskcastError(problem_from_response(response), response.status_code)
        answer: dict[str, Any] = response.json()
        return answer
