"""Verifying a Standard Webhooks delivery with the standard library alone.

The signature is ``v1,<base64 HMAC-SHA256>`` over ``{webhook-id}.{webhook-timestamp}.{body}``, keyed with the
base64 secret after ``whsec_``; the header may list several (space-separated) during a secret rotation, and
one match is enough. A timestamp more than five minutes away from now is refused, so a captured delivery
cannot be replayed later.

``taskcast webhook-receiver --port N --secret whsec_...``: a small server that verifies and prints deliveries.

Each POST is verified with the SDK's ``verify_webhook`` exactly as a real receiver would: 204 when the
signature holds, 400 when it does not. Every verified event prints one line on stdout::

    <webhook-id>  <task id>  <status>  v<version>

A retried delivery keeps its ``webhook-id``; the line then ends with ``(repeat)`` so it can be ignored.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

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


# --- the receiver: taskcast webhook-receiver ------------------------------------------------------

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Delivery:
    """One verified webhook: its id, the parsed body and whether that id was seen before."""

    webhook_id: str
    payload: dict[str, Any]
    repeat: bool = False

    @property
    def data(self) -> dict[str, Any]:
        return self.payload.get("data") or {}

    def line(self) -> str:
        data = self.data
        text = f"{self.webhook_id}  {data.get('task_id')}  {data.get('status')}  v{data.get('version')}"
        return text + ("  (repeat)" if self.repeat else "")


class WebhookReceiver:
    """A threaded HTTP server on ``host:port`` (``port=0`` picks a free one) that verifies every POST."""

    def __init__(
        self,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_delivery: Callable[[Delivery], None] | None = None,
        out: TextIO | None = None,
        log: TextIO | None = None,
    ) -> None:
        self.key = secret_key(secret)  # ValueError on a secret that is not base64 (after ``whsec_``)
        self.on_delivery = on_delivery
        self.out = out if out is not None else sys.stdout
        self.log = log if log is not None else sys.stderr
        self.deliveries: list[Delivery] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.server = ThreadingHTTPServer((host, port), self._handler_class())
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def accept(self, body: bytes, headers: dict[str, str]) -> Delivery:
        payload = verify_webhook(self.key, body, headers)
        webhook_id = header(headers, "webhook-id")
        with self._lock:
            delivery = Delivery(webhook_id, payload, repeat=webhook_id in self._seen)
            self._seen.add(webhook_id)
            self.deliveries.append(delivery)
            self.out.write(delivery.line() + "\n")
            self.out.flush()
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        return delivery

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "taskcast-webhook-receiver"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    self._answer(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
                    return
                if int(length) > MAX_BODY_BYTES:
                    self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
                    return
                body = self.rfile.read(int(length))
                try:
                    receiver.accept(body, dict(self.headers.items()))
                except WebhookRefused as exc:
                    receiver.log.write(f"refused a delivery: {exc}\n")
                    receiver.log.flush()
                    self._answer(HTTPStatus.BAD_REQUEST, f"signature not verified: {exc}")
                    return
                self._answer(HTTPStatus.NO_CONTENT)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(HTTPStatus.METHOD_NOT_ALLOWED, "POST webhooks here")

            def _answer(self, status: HTTPStatus, detail: str = "") -> None:
                body = json.dumps({"title": status.phrase, "status": int(status), "detail": detail}).encode()
                self.send_response(status)
                if status == HTTPStatus.NO_CONTENT:
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_header("Content-Type", "application/problem+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the lines above suffice
                pass

        return Handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskcast webhook-receiver",
        description="Receive taskcast webhooks, verify their signatures and print one line per event.",
    )
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--secret", default=None, help="the tenant's whsec_ secret (default: $TASKCAST_WEBHOOK_SECRET)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["webhook-receiver"]:
        args_list = args_list[1:]
    try:
        args = build_parser().parse_args(args_list)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    secret = args.secret or os.environ.get("TASKCAST_WEBHOOK_SECRET")
    if not secret:
        sys.stderr.write("taskcast webhook-receiver: error: pass --secret whsec_... or set TASKCAST_WEBHOOK_SECRET\n")
        return 2
    try:
        receiver = WebhookReceiver(secret, host=args.host, port=args.port)
    except ValueError:
        sys.stderr.write("taskcast webhook-receiver: error: the secret is not a valid whsec_ secret\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"taskcast webhook-receiver: error: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    sys.stderr.write(f"listening on {receiver.url} (use it as callback_url); Ctrl-C stops\n")
    sys.stderr.flush()
    try:
        receiver.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
