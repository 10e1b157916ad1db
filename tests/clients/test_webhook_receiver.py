"""The webhook receiver demo: real HTTP posts signed with standardwebhooks, in-process and as a subprocess."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import requests
from standardwebhooks import Webhook

from taskcast_client.webhooks import Delivery, WebhookReceiver

# The receiver command as `taskcast webhook-receiver` runs it: main() over the command line.
_RUN_RECEIVER = "import sys; from taskcast_client.webhooks import main; sys.exit(main())"
SECRET = "whsec_" + "dGVzdC1yZWNlaXZlci1zZWNyZXQtMDEyMzQ1"
OTHER_SECRET = "whsec_" + "b3RoZXItc2VjcmV0LTk4NzY1NDMyMTA="


def signed(payload: dict, webhook_id: str, secret: str = SECRET, at: datetime | None = None) -> tuple[bytes, dict]:
    body = json.dumps(payload)
    timestamp = at or datetime.now(UTC)
    signature = Webhook(secret).sign(webhook_id, timestamp, body)
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def status_event(task_id: str = "t-1", status: str = "SUCCEEDED", version: int = 4) -> dict:
    data = {"type": "task.status", "task_id": task_id, "status": status, "version": version, "progress": 100}
    return {"type": "task.status", "timestamp": "2030-01-01T00:00:00Z", "data": data}


@pytest.fixture
def receiver():
    out = io.StringIO()
    received: queue.Queue[Delivery] = queue.Queue()
    with WebhookReceiver(SECRET, out=out, log=io.StringIO(), on_delivery=received.put) as server:
        server.out_text = out  # type: ignore[attr-defined]
        server.received = received  # type: ignore[attr-defined]
        yield server


def test_a_signed_delivery_is_verified_and_printed(receiver: WebhookReceiver) -> None:
    body, headers = signed(status_event(), "t-1.4")

    answer = requests.post(receiver.url, data=body, headers=headers, timeout=5)

    assert answer.status_code == 204
    delivery = receiver.received.get(timeout=5)
    assert delivery.payload == status_event()
    assert receiver.out_text.getvalue() == "t-1.4  t-1  SUCCEEDED  v4\n"


def test_a_retried_delivery_is_marked_as_a_repeat(receiver: WebhookReceiver) -> None:
    for _ in range(2):
        body, headers = signed(status_event(version=2, status="RUNNING"), "t-1.2")
        assert requests.post(receiver.url, data=body, headers=headers, timeout=5).status_code == 204

    assert receiver.out_text.getvalue().splitlines() == ["t-1.2  t-1  RUNNING  v2", "t-1.2  t-1  RUNNING  v2  (repeat)"]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body, headers: (body, {**headers, **signed({}, "x", OTHER_SECRET)[1]}), id="other-secret"),
        pytest.param(lambda body, headers: (body.replace(b"SUCCEEDED", b"FAILED"), headers), id="changed-body"),
        pytest.param(lambda body, headers: (body, {k: v for k, v in headers.items() if k != "webhook-signature"}),
                     id="no-signature"),
        pytest.param(lambda body, headers: (body, {**headers, "webhook-signature": "v1,not base64!"}), id="garbage"),
        pytest.param(lambda body, headers: signed(json.loads(body), "t-1.4", at=datetime.now(UTC) - timedelta(hours=1)),
                     id="stale-timestamp"),
    ],
)
def test_anything_not_signed_with_the_secret_is_refused_with_400(receiver: WebhookReceiver, tamper) -> None:
    body, headers = tamper(*signed(status_event(), "t-1.4"))

    answer = requests.post(receiver.url, data=body, headers=headers, timeout=5)

    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert receiver.out_text.getvalue() == ""
    assert receiver.received.empty()


def test_the_command_runs_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", _RUN_RECEIVER, "--port", "0", "--secret", SECRET],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        banner = process.stderr.readline()  # blocks until the server listens
        assert banner.startswith("listening on http://127.0.0.1:"), banner
        url = banner.split()[2]
        body, headers = signed(status_event("t-9", "FAILED", 3), "t-9.3")

        assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 204
        assert process.stdout.readline() == "t-9.3  t-9  FAILED  v3\n"
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=10)
    assert code == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "pass --secret"), (["--secret", "whsec_%%%"], "not a valid whsec_ secret")],
)
def test_bad_arguments_exit_2(argv: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TASKCAST_WEBHOOK_SECRET"}
    finished = subprocess.run(
        [sys.executable, "-c", _RUN_RECEIVER, "--port", "0", *argv],
        capture_output=True, text=True, timeout=30, env=env,
    )
    assert finished.returncode == 2
    assert message in finished.stderr and "Traceback" not in finished.stderr

