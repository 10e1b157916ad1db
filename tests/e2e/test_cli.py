"""``taskcast local`` as a user runs it: a real process that prints its URLs and stops cleanly on SIGINT."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from tests.conftest import TENANTS


def _environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TASKCAST_", "AWS_ENDPOINT_URL", "POWERTOOLS_"))}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@contextmanager
def local_process(*arguments: str, **env: str) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """``taskcast local`` in a child process; its output lines (stdout and stderr) arrive on a queue."""
    command = [sys.executable, "-m", "taskcast.cli", "local", *arguments]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=_environment(**env), start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put("")  # end of output

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _read_until(lines: queue.Queue[str], marker: str, timeout_s: float = 60.0) -> str:
    seen = []
    while True:
        line = lines.get(timeout=timeout_s)
        seen.append(line)
        if marker in line or line == "":
            return "".join(seen)


def _port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_taskcast_local_prints_its_urls_and_dev_credentials_and_stops_on_sigint() -> None:
    with local_process("--port", "0", "--ws-port", "0", "--mgmt-port", "0", "--s3-port", "0") as (process, lines):
        banner = _read_until(lines, "Press Ctrl-C to stop.")
        names = r"REST API|WebSocket|@connections|Dashboard|S3 front|AWS \(moto\)"
        urls = dict(re.findall(rf"^\s+({names})\s+(\S+)", banner, re.M))
        assert set(urls) == {"REST API", "WebSocket", "@connections", "Dashboard", "S3 front", "AWS (moto)"}, banner
        assert re.search(r"API key\s+tc_dev_\S+", banner)
        assert re.search(r"Webhook secret\s+whsec_\S+", banner)
        assert "loopback http callbacks are ALLOWED" in banner
        assert requests.get(urls["REST API"] + "/openapi.json", timeout=10).status_code == 200
        config = requests.get(urls["REST API"] + "/dashboard/config.js", timeout=10).text
        api_key = re.search(r"API key\s+(\S+)", banner).group(1)
        assert json.dumps(api_key) in config  # the generated key is handed to the dashboard

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        rest = _read_until(lines, "\0", timeout_s=10)
        assert "Stopped." in rest and "Traceback" not in rest
        moto_port = int(urls["AWS (moto)"].rsplit(":", 1)[1])
        assert not _port_is_open(moto_port)  # the moto child went with it


def test_tenants_from_the_environment_are_never_printed() -> None:
    tenants = json.dumps(TENANTS)
    ports = ("--port", "0", "--ws-port", "0", "--mgmt-port", "0", "--s3-port", "0")
    with local_process(*ports, TASKCAST_TENANTS=tenants) as (process, lines):
        banner = _read_until(lines, "Press Ctrl-C to stop.")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        output = banner + _read_until(lines, "\0", timeout_s=10)
    assert "2 from TASKCAST_TENANTS" in output
    for tenant in TENANTS.values():
        assert tenant["api_key"] not in output and tenant["webhook_secret"] not in output


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with local_process("--port", str(port), "--ws-port", "0", "--mgmt-port", "0") as (process, lines):
            assert process.wait(timeout=60) == 1
            output = _read_until(lines, "\0", timeout_s=10)
    assert "already in use" in output and "Traceback" not in output


@pytest.mark.parametrize(
    "command", [["submit", "--help"], ["webhook-receiver", "--help"], ["webhook-endpoints", "--help"]]
)
def test_the_other_subcommands_are_delegated(command: list[str]) -> None:
    finished = subprocess.run([sys.executable, "-m", "taskcast.cli", *command], capture_output=True, text=True,
                              timeout=60, env=_environment())
    assert finished.returncode == 0
    assert "usage" in finished.stdout.lower()
