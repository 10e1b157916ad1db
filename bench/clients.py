"""The clients the benchmark measures, one per transport, each counting what it sends and receives.

Everything runs on one asyncio loop: WebSocket connections natively (thousands of them are cheap),
HTTP calls through ``requests`` in a bounded thread pool (one session per poller, so connections are
kept alive as a real client would). A client "knows" a task ended at the moment the answer or message
saying so is read; that instant is taken with ``time.time()``, the same clock the worker stamps
``updated_at`` with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidMessage

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
HTTP_TIMEOUT_S = 30.0  # longer than a 25 s long-poll hold
IN_PROGRESS_RETRY_S = 90.0  # how long a create keeps retrying a 409 "in progress" (the first attempt runs on)
T = TypeVar("T")


@dataclass
class Follow:
    """One client following one task by one transport, with what it cost that client."""

    task_id: str
    transport: str
    requests: float = 0  # HTTP requests and WebSocket frames the client sent for this task
    messages: int = 0  # answers, frames or webhook POSTs the client received for this task
    known_at: float | None = None  # when the client learned the terminal status
    status: str | None = None
    errors: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def know(self, status: str, at: float) -> None:
        if self.known_at is None:
            self.status = status
            self.known_at = at
            self.done.set()


class Http:
    """``requests`` calls run off the loop in a pool sized for the pollers that may wait at once."""

    def __init__(self, base_url: str, api_key: str, workers: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-http")
        self.in_progress_retries = 0  # creates retried after a 409 "in progress"; reported in the notes

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.api_key}"
        return session

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- blocking calls (run through ``run``)

    def create(self, session: requests.Session, job: str, job_input: Any, callback_url: str | None = None,
               attempts: int = 3) -> dict:
        """``POST /tasks`` with an ``Idempotency-Key``, so a 5xx or a dropped connection can be retried safely."""
        body: dict[str, Any] = {"type": job, "input": job_input}
        if callback_url:
            body["callback_url"] = callback_url
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        attempt, in_progress_until = 0, time.monotonic() + IN_PROGRESS_RETRY_S
        while True:
            try:
                answer = session.post(f"{self.base_url}/tasks", json=body, headers=headers, timeout=HTTP_TIMEOUT_S)
            except requests.RequestException:
                attempt += 1
                if attempt == attempts:
                    raise
                time.sleep(0.5 * 2**attempt)
                continue
            if answer.status_code == 202:
                return answer.json()
            # A retry that finds the first attempt still running gets 409 "retry shortly": a client does.
            if (answer.status_code == 409 and "idempotency-key-in-progress" in answer.text
                    and time.monotonic() < in_progress_until):
                self.in_progress_retries += 1
                time.sleep(1.0)
                continue
            attempt += 1
            if answer.status_code < 500 or attempt == attempts:
                raise RuntimeError(f"POST /tasks answered {answer.status_code}: {answer.text[:300]}")
            time.sleep(0.5 * 2**attempt)

    def status(self, session: requests.Session, task_id: str, wait: float | None = None) -> tuple[int, str | None]:
        """``GET /tasks/{id}`` without following the 303: (HTTP status, task status it tells)."""
        url = f"{self.base_url}/tasks/{quote(task_id)}" + (f"?wait={wait:g}" if wait else "")
        answer = session.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT_S)
        if answer.status_code == 303:
            return 303, "SUCCEEDED"
        if answer.status_code == 200:
            return 200, answer.json().get("status")
        return answer.status_code, None

    def events(self, session: requests.Session, task_id: str) -> list[dict[str, Any]]:
        answer = session.get(f"{self.base_url}/tasks/{quote(task_id)}/events", timeout=HTTP_TIMEOUT_S)
        answer.raise_for_status()
        return answer.json()


def fixed_delays(interval_s: float) -> Iterator[float]:
    while True:
        yield interval_s


def backoff_delays(initial_s: float = 1.0, factor: float = 1.5, cap_s: float = 28.0) -> Iterator[float]:
    delay = initial_s
    while True:
        yield delay
        delay = min(delay * factor, cap_s)


async def poll(http: Http, follow: Follow, delays: Iterator[float], deadline: float) -> Follow:
    """Ask ``GET /tasks/{id}`` after each delay (counted from the previous answer) until it tells the end."""
    session = http.session()
    try:
        for delay in delays:
            await asyncio.sleep(max(0.0, min(delay, deadline - time.time())))
            if time.time() >= deadline:
                break
            code = await _ask(http, session, follow)
            if follow.known_at is not None:
                break
            if code is not None and code >= 500:
                follow.errors += 1
    finally:
        session.close()
    return follow


async def _ask(http: Http, session: requests.Session, follow: Follow, wait_s: float | None = None) -> int | None:
    """One status request of a follower, counted; notes the end when the answer tells it. The answer's
    HTTP status, or None when the request failed (counted as an error)."""
    follow.requests += 1
    try:
        code, status = await http.run(http.status, session, follow.task_id, wait_s)
    except requests.RequestException:
        follow.errors += 1
        return None
    follow.messages += 1
    if status in TERMINAL:
        follow.know(status, time.time())
    return code


async def long_poll(http: Http, follow: Follow, wait_s: float, deadline: float) -> Follow:
    """``GET /tasks/{id}?wait=N`` again and again until an answer tells the end."""
    session = http.session()
    try:
        while time.time() < deadline:
            code = await _ask(http, session, follow, wait_s)
            if follow.known_at is not None:
                break
            if code is None:
                await asyncio.sleep(0.1)
            elif code >= 400:
                follow.errors += 1
                await asyncio.sleep(0.5)
    finally:
        session.close()
    return follow


MessageHook = Callable[["PushConnection", dict[str, Any], float], None]


class PushConnection:
    """One WebSocket connection that may follow several tasks. Control-frame pings are off, so every frame
    it sends is a counted application frame; the HTTP upgrade is counted once per connection."""

    def __init__(self, ws_url: str, api_key: str, on_message: MessageHook | None = None) -> None:
        self.url = f"{ws_url.rstrip('/')}/?token={quote(api_key)}"
        self.follows: dict[str, Follow] = {}
        self.on_message = on_message
        self.frames_sent = 0
        self.frames_received = 0
        self.failed_handshakes = 0  # handshakes tried again (each is one more HTTP request)
        self.pings_sent = 0
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, timeout_s: float = 30.0, attempts: int = 3) -> PushConnection:
        """Connect, trying again after a refused or broken handshake as a browser would (bounded)."""
        for attempt in range(attempts):
            try:
                self.ws = await asyncio.wait_for(
                    connect(self.url, ping_interval=None, open_timeout=timeout_s, max_size=2**20), timeout_s
                )
                break
            except (OSError, TimeoutError, InvalidHandshake, InvalidMessage):
                if attempt == attempts - 1:
                    raise
                self.failed_handshakes += 1
                await asyncio.sleep(0.5 * 2**attempt)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def subscribe(self, follow: Follow) -> None:
        assert self.ws is not None, "open the connection first"
        self.follows[follow.task_id] = follow
        follow.requests += 1
        self.frames_sent += 1
        await self.ws.send(json.dumps({"action": "subscribe", "task_id": follow.task_id}))

    async def ping(self) -> None:
        """``{"action": "ping"}``: keeps API Gateway's 10-minute idle timeout away (not counted for a task)."""
        if self.ws is not None:
            self.pings_sent += 1
            with contextlib.suppress(Exception):
                await self.ws.send(json.dumps({"action": "ping"}))

    async def close(self, timeout_s: float = 5.0) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), timeout_s)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                at = time.time()
                self.frames_received += 1
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                follow = self.follows.get(str(message.get("task_id")))
                if follow is not None and message.get("type") == "task.status":
                    follow.messages += 1
                    if message.get("status") in TERMINAL:
                        follow.know(message["status"], at)
                if self.on_message is not None:
                    self.on_message(self, message, at)


async def open_connections(
    ws_url: str, api_key: str, count: int, on_message: MessageHook | None = None, at_once: int = 100
) -> list[PushConnection]:
    """``count`` connections, at most ``at_once`` handshakes in flight (as a fleet of browsers would ramp)."""
    gate = asyncio.Semaphore(at_once)

    async def one() -> PushConnection:
        async with gate:
            return await PushConnection(ws_url, api_key, on_message).open()

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def keep_alive(connections: list[PushConnection], every_s: float = 240.0, at_once: int = 50) -> None:
    """Ping every open connection every ``every_s`` until cancelled, as a page that stays open would.

    Idle connections are kept across the benchmark's parts: letting the gateway time them out would
    start a ``$disconnect`` storm in the middle of a later measurement.
    """
    while True:
        await asyncio.sleep(every_s)
        await bounded([connection.ping() for connection in list(connections)], at_once)


async def close_all(connections: list[PushConnection], at_once: int = 200) -> None:
    gate = asyncio.Semaphore(at_once)

    async def one(connection: PushConnection) -> None:
        async with gate:
            await connection.close()

    await asyncio.gather(*(one(connection) for connection in connections))


async def bounded(awaitables: list[Awaitable[T]], at_once: int) -> list[T]:
    gate = asyncio.Semaphore(at_once)

    async def one(item: Awaitable[T]) -> T:
        async with gate:
            return await item

    return list(await asyncio.gather(*(one(item) for item in awaitables)))
