"""A hard total deadline for one HTTP attempt: connect + TLS + send + response headers, whatever the
receiver does (answering one byte at a time keeps every per-read socket timeout happy forever).

The attempt runs in a thread of its own; the caller waits for it at most the deadline. When time is up,
the watch shuts down every socket the attempt opened, which wakes any blocked read or write in that
thread at once (it then ends with a connection error that nobody waits for), and the caller reports a
timeout. Sockets are found by the connection classes below: each connection registers the raw socket
it opens with the watch of the thread that opens it (the attempt's thread).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

T = TypeVar("T")

_current = threading.local()


class AttemptWatch:
    """The sockets one attempt opened, so that they can be shut down from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._aborted = False

    def register(self, sock: socket.socket) -> None:
        # A duplicate of the descriptor: TLS wrapping detaches the original object, and shutdown()
        # acts on the connection, not on one descriptor.
        duplicate = socket.socket(fileno=os.dup(sock.fileno()))
        with self._lock:
            self._sockets.append(duplicate)
            aborted = self._aborted
        if aborted:
            _shutdown(duplicate)

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def close(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _register(sock: socket.socket) -> socket.socket:
    watch: AttemptWatch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.register(sock)
    return sock


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _register(super()._new_conn())


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _register(super()._new_conn())


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def watch_connections(session: requests.Session) -> requests.Session:
    """Make every connection ``session`` opens register its socket with the running attempt's watch."""
    for adapter in session.adapters.values():
        manager: Any = getattr(adapter, "poolmanager", None)
        if manager is not None:
            manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
    return session


class DeadlineExceeded(Exception):
    """The attempt was still running when its deadline came; its sockets have been shut down."""


def run_with_deadline(attempt: Callable[[], T], deadline_s: float) -> T:
    """``attempt()`` in a thread of its own, given at most ``deadline_s``; raise ``DeadlineExceeded`` after."""
    watch = AttemptWatch()
    outcome: dict[str, Any] = {}

    def run() -> None:
        _current.watch = watch
        try:
            outcome["value"] = attempt()
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error
        finally:
            _current.watch = None
            watch.close()

    thread = threading.Thread(target=run, name="webhook-attempt", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        watch.abort()
        raise DeadlineExceeded(f"no answer within {deadline_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]
