"""Python client for taskcast: submit a task, then follow it by push with polling as the fallback.

``TaskcastClient(base_url, api_key).submit("sleep", {"seconds": 5}).wait()`` listens on the WebSocket
(subscribe, then ``task.status`` messages until a terminal status), resumes with ``since_version`` after
a dropped connection, and long-polls ``GET /tasks/{id}?wait=25`` when the WebSocket cannot connect.
Each connect (and reconnect) authenticates with a fresh single-use ticket from ``POST /ws-tickets``
(``?ticket=``), so the API key never travels in a URL; ``websocket_auth="token"`` sends the key as
``?token=`` instead (the less safe choice: URLs end up in proxy and access logs).
Every update carries ``version``, so repeats and stale notices are dropped here, once, for every transport.

Large inputs go straight to S3: ``submit_file("digest", "data.csv")`` declares the upload with its task
(``POST /uploads``), streams the file to the presigned URL, and returns the task's handle; the task
starts by itself once the file lands. ``upload(path)`` only uploads and returns the ``upload_id``.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import random
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urljoin, urlsplit

import requests
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from taskcast_client.endpoints import Endpoints

log = logging.getLogger("taskcast_client")

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
CLIENT_PROBLEM_BASE = "https://taskcast.dev/problems/client"

REQUEST_TIMEOUT_S = 30.0
LONG_POLL_S = 25  # the server holds at most 25 s, under API Gateway's 29 s limit
LONG_POLL_GRACE_S = 10.0  # read timeout beyond the hold, for the network and the gateway
PING_EVERY_S = 240.0  # well inside API Gateway's 10-minute idle timeout
WEBSOCKET_OPEN_TIMEOUT_S = 10.0
WEBSOCKET_RECONNECTS = 3  # consecutive failed reconnects before falling back to polling
WEBSOCKET_AUTH_MODES = ("ticket", "token")
SERVER_ERROR_RETRIES = 5  # consecutive 5xx / network failures while polling before giving up

UpdateCallback = Callable[[dict[str, Any]], None]


class TaskcastError(Exception):
    """An error answered by the API (or met by the client), carrying its RFC 9457 problem document."""

    def __init__(self, problem: Mapping[str, Any], status: int | None = None) -> None:
        self.problem: dict[str, Any] = dict(problem)
        self.status = status if status is not None else _int_or_none(self.problem.get("status"))
        super().__init__(str(self))

    @property
    def title(self) -> str:
        return str(self.problem.get("title") or "Error")

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or "")

    @property
    def type(self) -> str:
        return str(self.problem.get("type") or "about:blank")

    def __str__(self) -> str:
        status = f" ({self.status})" if self.status else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.title}{status}{detail}"


class TaskcastUnreachable(TaskcastError):
    """The API could not be reached at all (connection refused, DNS, timeout)."""


class TaskTimeout(TaskcastError, TimeoutError):
    """``wait(timeout=...)`` ran out before the task reached a terminal status."""


@dataclass(frozen=True)
class Outcome:
    """How a task ended: its final monitor, its result (SUCCEEDED only) and the transport that saw it end."""

    monitor: dict[str, Any]
    result: Any = None
    transport: str = "websocket"

    @property
    def status(self) -> str:
        return str(self.monitor["status"])

    @property
    def version(self) -> int:
        return int(self.monitor["version"])

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def error(self) -> dict[str, Any] | None:
        return self.monitor.get("error")


# ---------------------------------------------------------------- pure decisions


def is_terminal(status: str | None) -> bool:
    return status in TERMINAL_STATUSES


def is_newer(message: Mapping[str, Any], last_version: int) -> bool:
    """Whether an update moves the task forward; repeats and stale notices (at-least-once delivery) are not."""
    return int(message.get("version", 0)) > last_version


def merge_update(monitor: Mapping[str, Any], message: Mapping[str, Any]) -> dict[str, Any]:
    """The monitor after one ``task.status`` message (push messages carry no links or timestamps of creation)."""
    merged = dict(monitor)
    merged.update(
        id=message.get("task_id", monitor.get("id")),
        status=message["status"],
        version=message["version"],
        progress=message.get("progress", monitor.get("progress", 0)),
    )
    if message.get("at"):
        merged["updated_at"] = message["at"]
    if message.get("error") is not None:
        merged["error"] = message["error"]
    return merged


def message_from_monitor(monitor: Mapping[str, Any]) -> dict[str, Any]:
    """A monitor read by polling, in the shape of the ``task.status`` message push delivers."""
    message: dict[str, Any] = {
        "type": "task.status",
        "task_id": monitor["id"],
        "status": monitor["status"],
        "version": monitor["version"],
        "progress": monitor.get("progress", 0),
        "at": monitor.get("updated_at"),
    }
    if monitor.get("error") is not None:
        message["error"] = monitor["error"]
    if monitor["status"] == "SUCCEEDED":
        message["result_url"] = f"/tasks/{monitor['id']}/result"
    return message


def websocket_address(websocket_url: str, credential: str, parameter: str = "ticket") -> str:
    """The URL to connect to: WebSocket handshakes from browsers cannot carry headers, so the credential is a
    query parameter, ``ticket`` (single use, short-lived) or ``token`` (the API key itself)."""
    separator = "&" if "?" in websocket_url else "?"
    return f"{websocket_url}{separator}{parameter}={quote(credential, safe='')}"


def backoff_delay(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter: between half and all of ``base * 2**attempt``, at most ``cap``."""
    ceiling = min(cap, base * (2 ** max(0, attempt)))
    return float(ceiling * (0.5 + 0.5 * rand()))


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds form; an HTTP date or garbage yields ``None``)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def problem_from_response(response: requests.Response) -> dict[str, Any]:
    """The response's RFC 9457 document, or one built from its status line when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("title" in body or "type" in body):
        return body
    text = (response.text or "").strip()
    return {
        "type": "about:blank",
        "title": response.reason or f"HTTP {response.status_code}",
        "status": response.status_code,
        "detail": text[:300] if text else f"{response.request.method} {response.url} answered {response.status_code}",
    }


def s3_problem(response: requests.Response) -> dict[str, Any]:
    """S3's XML ``<Error>`` (a refused upload) as a problem document; any other body as the API's would be."""
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        return problem_from_response(response)
    code, message = root.findtext("Code") or "", root.findtext("Message") or ""
    return {
        "type": f"{CLIENT_PROBLEM_BASE}/upload-refused",
        "title": "Upload refused",
        "status": response.status_code,
        "detail": f"S3 answered {response.status_code} {code}: {message}".strip(),
        "s3_code": code,
    }


def guess_content_type(path: str | os.PathLike[str]) -> str:
    return mimetypes.guess_type(os.fspath(path))[0] or "application/octet-stream"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _client_problem(kind: str, title: str, detail: str) -> dict[str, Any]:
    return {"type": f"{CLIENT_PROBLEM_BASE}/{kind}", "title": title, "detail": detail}


class _Tracker:
    """The latest known state of one task; lets through only updates that move it forward."""

    def __init__(self, task_id: str, monitor: Mapping[str, Any] | None, on_update: UpdateCallback | None) -> None:
        self.task_id = task_id
        self.monitor: dict[str, Any] = dict(monitor) if monitor else {"id": task_id}
        self.version = int(self.monitor.get("version", 0))
        self._on_update = on_update

    @property
    def status(self) -> str | None:
        return self.monitor.get("status")

    @property
    def terminal(self) -> bool:
        return is_terminal(self.status)

    def offer(self, message: Mapping[str, Any], monitor: Mapping[str, Any] | None = None) -> bool:
        """Take an update if it is newer; ``monitor`` is the whole resource when polling read one."""
        if not is_newer(message, self.version):
            return False
        self.monitor = dict(monitor) if monitor is not None else merge_update(self.monitor, message)
        self.version = int(message["version"])
        if self._on_update is not None:
            self._on_update(dict(message))
        return True


class _WebSocketUnavailable(Exception):
    """The WebSocket cannot be used for this wait; follow the task by polling instead."""


class _Deadline:
    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self._end is None else max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def cap(self, seconds: float) -> float:
        remaining = self.remaining()
        return seconds if remaining is None else min(seconds, remaining)


# ---------------------------------------------------------------- I/O


class TaskcastClient:
    """The REST API (and, for waiting, the WebSocket) of one taskcast deployment, as one tenant."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        websocket_url: str | None = None,
        session: requests.Session | None = None,
        *,
        request_timeout: float = REQUEST_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
        websocket_auth: str = "ticket",
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required (for example http://127.0.0.1:3000)")
        if not api_key:
            raise ValueError("api_key is required")
        if websocket_auth not in WEBSOCKET_AUTH_MODES:
            raise ValueError(f"websocket_auth is one of {', '.join(WEBSOCKET_AUTH_MODES)}")
        self.websocket_auth = websocket_auth
        self.base_url = base_url.rstrip("/")
        self.websocket_url = websocket_url
        self.session = session or requests.Session()
        self.request_timeout = request_timeout
        self._api_key = api_key
        self._sleep = sleep
        self.endpoints = Endpoints(self)  # the tenant's registered webhook endpoints

    def __repr__(self) -> str:  # never show the key
        return f"TaskcastClient({self.base_url!r})"

    # -- tasks

    def submit(
        self,
        type: str,
        input: Any = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> TaskHandle:
        """``POST /tasks``: the task is accepted at once (202); follow it with the returned handle."""
        body: dict[str, Any] = {"type": type, "input": input}
        if callback_url is not None:
            body["callback_url"] = callback_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self.request("POST", "/tasks", json=body, headers=headers)
        monitor = response.json()
        return TaskHandle(self, monitor["id"], monitor)

    def task(self, task_id: str) -> TaskHandle:
        """A handle on an existing task (nothing is fetched until asked)."""
        return TaskHandle(self, task_id, None)

    # -- large inputs

    def submit_file(
        self,
        type: str,
        path: str | os.PathLike[str],
        content_type: str | None = None,
        callback_url: str | None = None,
    ) -> TaskHandle:
        """Upload a file straight to S3 with its task: the task waits (PENDING) and starts once the file lands.

        The file is streamed, never read whole; its content type is guessed from its name unless given.
        """
        task: dict[str, Any] = {"type": type}
        if callback_url is not None:
            task["callback_url"] = callback_url
        answer = self._upload(path, content_type, task)
        monitor = answer["task"]
        return TaskHandle(self, monitor["id"], monitor)

    def upload(self, path: str | os.PathLike[str], content_type: str | None = None) -> str:
        """Upload a file straight to S3; name the returned ``upload_id`` as a task's input (``{"upload_id": ...}``)."""
        return str(self._upload(path, content_type, None)["upload_id"])

    def _upload(
        self, path: str | os.PathLike[str], content_type: str | None, task: dict[str, Any] | None
    ) -> dict[str, Any]:
        size = os.path.getsize(path)
        body: dict[str, Any] = {"content_type": content_type or guess_content_type(path), "size": size}
        if task is not None:
            body["task"] = task
        answer = self.request("POST", "/uploads", json=body).json()
        if answer.get("method") != "PUT":
            raise TaskcastError(
                _client_problem("unexpected-answer", "Unexpected answer", "POST /uploads did not answer a PUT URL"),
            )
        with open(path, "rb") as file:
            self.put_unauthenticated(answer["url"], file, answer.get("headers") or {})
        return cast(dict[str, Any], answer)

    def put_unauthenticated(self, url: str, body: Any, headers: Mapping[str, str]) -> requests.Response:
        """A presigned PUT: exactly the signed headers, never the API key (S3 would refuse the request)."""
        try:
            response = self.session.put(url, data=body, headers=dict(headers), timeout=(10.0, self.request_timeout))
        except requests.RequestException as exc:
            raise TaskcastUnreachable(
                _client_problem("unreachable", "Upload failed", f"PUT to the upload URL failed: {_reason(exc)}")
            ) from exc
        if not 200 <= response.status_code < 300:
            raise TaskcastError(s3_problem(response), response.status_code)
        return response

    # -- plumbing

    def url(self, path: str) -> str:
        """An absolute URL; API paths (``/tasks/...``, as in ``Location``) stay under the base URL's stage path."""
        if urlsplit(path).scheme in ("http", "https"):
            return path
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def same_origin(self, url: str) -> bool:
        target, base = urlsplit(self.url(url)), urlsplit(self.base_url)
        return (target.scheme, target.netloc) == (base.scheme, base.netloc)

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (),
        timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One authenticated call; 2xx and the ``ok`` statuses return, anything else raises ``TaskcastError``."""
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Accept": "application/json",
            **kwargs.pop("headers", {}),
        }
        url = self.url(path)
        try:
            response = self.session.request(
                method,
                url,
                headers=headers,
                timeout=(min(10.0, self.request_timeout), timeout or self.request_timeout),
                allow_redirects=False,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise TaskcastUnreachable(
                _client_problem("unreachable", "API unreachable", f"{method} {url} failed: {_reason(exc)}")
            ) from exc
        if 200 <= response.status_code < 300 or response.status_code in ok:
            return response
        raise TaskcastError(problem_from_response(response), response.status_code)

    def fetch_unauthenticated(self, url: str) -> requests.Response:
        """A presigned URL carries its own signature; an Authorization header would make S3 refuse it."""
        try:
            response = self.session.get(url, timeout=(10.0, self.request_timeout))
        except requests.RequestException as exc:
            raise TaskcastUnreachable(
                _client_problem("unreachable", "Result unreachable", f"GET result failed: {_reason(exc)}")
            ) from exc
        if response.status_code != 200:
            raise TaskcastError(problem_from_response(response), response.status_code)
        return response

    def websocket_ticket(self) -> str:
        """A single-use ticket for one WebSocket connect (``POST /ws-tickets``)."""
        body = _body(self.request("POST", "/ws-tickets"))
        ticket = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(ticket, str) or not ticket:
            raise TaskcastError(_client_problem("bad-ticket", "No ticket", "POST /ws-tickets answered no ticket"))
        return ticket

    def open_websocket(self, websocket_url: str) -> ClientConnection:
        """Connects with a fresh ticket (or, with ``websocket_auth="token"``, the API key as ``?token=``)."""
        if self.websocket_auth == "token":
            address = websocket_address(websocket_url, self._api_key, "token")
        else:
            address = websocket_address(websocket_url, self.websocket_ticket(), "ticket")
        return connect(
            address,
            open_timeout=WEBSOCKET_OPEN_TIMEOUT_S,
            close_timeout=2,
        )

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)


class TaskHandle:
    """One task: its latest known monitor, and the calls that read, follow or cancel it."""

    def __init__(self, client: TaskcastClient, task_id: str, monitor: Mapping[str, Any] | None) -> None:
        self.client = client
        self.id = task_id
        self.monitor: dict[str, Any] | None = dict(monitor) if monitor else None

    def __repr__(self) -> str:
        status = self.monitor.get("status") if self.monitor else "?"
        return f"TaskHandle({self.id!r}, {status})"

    @property
    def path(self) -> str:
        return f"/tasks/{quote(self.id, safe='')}"

    # -- one-shot calls

    def status(self) -> dict[str, Any]:
        """``GET /tasks/{id}``: the monitor (also for a finished task, which answers 303 to its result)."""
        response = self.client.request("GET", self.path, ok=(303,))
        self.monitor = self._monitor_from(response)
        return self.monitor

    def events(self) -> list[dict[str, Any]]:
        """``GET /tasks/{id}/events``: the append-only history, oldest first."""
        return cast(list[dict[str, Any]], self.client.request("GET", f"{self.path}/events").json())

    def cancel(self) -> dict[str, Any]:
        """``DELETE /tasks/{id}``: cancels a PENDING/RUNNING task; a finished one raises ``TaskcastError`` (409)."""
        monitor = self.client.request("DELETE", self.path).json()
        if isinstance(monitor, dict) and "status" in monitor:
            self.monitor = monitor
        return cast(dict[str, Any], monitor)

    def result(self) -> Any:
        """``GET /tasks/{id}/result``, following a 303 to a presigned URL for large results."""
        response = self.client.request("GET", f"{self.path}/result", ok=(303,))
        if response.status_code == 303:
            location = response.headers.get("Location", "")
            if self.client.same_origin(location):
                response = self.client.request("GET", location)
            else:
                response = self.client.fetch_unauthenticated(location)
        return _body(response)

    # -- following

    def wait(self, timeout: float | None = None, on_update: UpdateCallback | None = None) -> Outcome:
        """Follow the task until it ends; ``on_update`` gets every new ``task.status`` message once, in order.

        Push first (WebSocket); long-polling when the WebSocket cannot connect. Raises ``TaskTimeout`` when
        ``timeout`` seconds pass first, ``TaskcastError`` when the API refuses (unknown task, bad key).
        """
        deadline = _Deadline(timeout)
        tracker = _Tracker(self.id, self.monitor, on_update)
        transport = "websocket"
        if not tracker.terminal:
            websocket_url = self.client.websocket_url or (self.monitor or {}).get("links", {}).get("websocket")
            try:
                if not websocket_url:
                    raise _WebSocketUnavailable("no WebSocket URL known")
                self._follow_websocket(websocket_url, tracker, deadline)
            except _WebSocketUnavailable as reason:
                log.info("task %s: WebSocket unavailable (%s); long-polling instead", self.id, reason)
                transport = "polling"
                self._follow_polling(tracker, deadline)
        self.monitor = tracker.monitor
        result = self.result() if tracker.status == "SUCCEEDED" else None
        return Outcome(monitor=tracker.monitor, result=result, transport=transport)

    def _follow_websocket(self, websocket_url: str, tracker: _Tracker, deadline: _Deadline) -> None:
        connected_once = False
        failures = 0
        while not tracker.terminal:
            self._raise_if_expired(tracker, deadline)
            try:
                connection = self.client.open_websocket(websocket_url)
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError, TaskcastError) as exc:
                # Never connected: poll at once. Connected before: a few retries with backoff, then poll.
                failures += 1
                if not connected_once or failures > WEBSOCKET_RECONNECTS:
                    raise _WebSocketUnavailable(_reason(exc)) from exc
                self.client.sleep(deadline.cap(backoff_delay(failures - 1)))
                continue
            connected_once = True
            version_before = tracker.version
            with connection:
                self._listen(connection, tracker, deadline)
            if tracker.version > version_before:
                failures = 0
            elif not tracker.terminal:
                # A connection that closed without bringing anything: back off, and poll if it keeps happening.
                failures += 1
                if failures > WEBSOCKET_RECONNECTS:
                    raise _WebSocketUnavailable("the WebSocket keeps closing")
                self.client.sleep(deadline.cap(backoff_delay(failures - 1)))

    def _listen(self, connection: ClientConnection, tracker: _Tracker, deadline: _Deadline) -> None:
        subscribe: dict[str, Any] = {"action": "subscribe", "task_id": self.id}
        if tracker.version > 0:
            subscribe["since_version"] = tracker.version  # resume: only what came after
        try:
            connection.send(json.dumps(subscribe))
            while not tracker.terminal:
                self._raise_if_expired(tracker, deadline)
                try:
                    raw = connection.recv(timeout=deadline.cap(PING_EVERY_S))
                except TimeoutError:
                    if not deadline.expired():
                        connection.send(json.dumps({"action": "ping"}))
                    continue
                self._handle_frame(raw, tracker)
        except ConnectionClosed as exc:
            log.info("task %s: WebSocket closed (%s); resuming after version %s", self.id, exc, tracker.version)

    def _handle_frame(self, raw: str | bytes, tracker: _Tracker) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("task %s: ignoring a frame that is not JSON", self.id)
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "task.status" and message.get("task_id") == self.id:
            tracker.offer(message)
        elif kind == "error":
            # The subscribe was refused (unknown task, another tenant's, ...): REST gives the precise answer.
            raise _WebSocketUnavailable(f"{message.get('code')}: {message.get('message')}")

    def _follow_polling(self, tracker: _Tracker, deadline: _Deadline) -> None:
        failures = 0
        while not tracker.terminal:
            self._raise_if_expired(tracker, deadline)
            hold = max(1, int(deadline.cap(LONG_POLL_S)))
            started = time.monotonic()
            try:
                response = self.client.request(
                    "GET", self.path, params={"wait": hold}, ok=(303, 429, 503), timeout=hold + LONG_POLL_GRACE_S
                )
            except (TaskcastUnreachable, TaskcastError) as exc:
                failures += 1
                transient = isinstance(exc, TaskcastUnreachable) or (exc.status or 0) >= 500
                if not transient or failures > SERVER_ERROR_RETRIES:
                    raise
                self.client.sleep(deadline.cap(backoff_delay(failures - 1)))
                continue
            if response.status_code in (429, 503):
                failures += 1
                delay = retry_after_seconds(response.headers.get("Retry-After"))
                self.client.sleep(deadline.cap(delay if delay is not None else backoff_delay(failures - 1)))
                continue
            failures = 0
            monitor = self._monitor_from(response)
            moved = tracker.offer(message_from_monitor(monitor), monitor)
            if not moved and not tracker.terminal:
                # Nothing changed: the hold already waited, unless the server answered early; honour Retry-After.
                retry_after = retry_after_seconds(response.headers.get("Retry-After")) or 0.0
                self.client.sleep(deadline.cap(retry_after - (time.monotonic() - started)))

    def _monitor_from(self, response: requests.Response) -> dict[str, Any]:
        """The monitor in a status answer; a 303 may come without one, then the history tells the final state."""
        body = _body(response) if response.content else None
        if isinstance(body, dict) and "status" in body and "version" in body:
            return body
        if response.status_code == 303:
            history = self.events()
            last = history[-1]
            base = self.monitor or {"id": self.id}
            return merge_update(base, {"task_id": self.id, **last})
        raise TaskcastError(
            _client_problem("unexpected-answer", "Unexpected answer", f"GET {self.path} answered without a monitor"),
            response.status_code,
        )

    def _raise_if_expired(self, tracker: _Tracker, deadline: _Deadline) -> None:
        if deadline.expired():
            raise TaskTimeout(
                _client_problem(
                    "timeout",
                    "Timed out waiting for the task",
                    f"task {self.id} was still {tracker.status or 'unknown'} after {deadline.timeout:g} s",
                )
            )


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.content


def _reason(exc: BaseException) -> str:
    """A one-line cause for people (requests' messages nest the whole pool state)."""
    text = str(exc) or exc.__class__.__name__
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200]
