"""``taskcast submit``: output, progress, exit codes and messages, in-process and as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from taskcast_client.client_cli import ProgressLine, main, render_progress
from tests.clients.fake_taskcast import API_KEY, FakeTaskcast


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def target(fake: FakeTaskcast) -> list[str]:
    return ["--url", fake.http_url, "--api-key", API_KEY]


def test_progress_bar_rendering() -> None:
    line = render_progress({"status": "RUNNING", "version": 3, "progress": 50})
    assert line == "[############------------]  50%  RUNNING    v3"
    assert render_progress({"status": "SUCCEEDED", "version": 8, "progress": 100}).startswith("[" + "#" * 24 + "]")


def test_on_a_terminal_the_bar_is_redrawn_in_place() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    line = ProgressLine(screen)
    line.update({"status": "RUNNING", "version": 2, "progress": 0})
    line.update({"status": "RUNNING", "version": 3, "progress": 50})
    line.finish("done")

    assert screen.getvalue() == (
        "\r\x1b[2K" + render_progress({"status": "RUNNING", "version": 2, "progress": 0})
        + "\r\x1b[2K" + render_progress({"status": "RUNNING", "version": 3, "progress": 50})
        + "\ndone\n"
    )


def test_submit_without_wait_prints_only_the_task_id(fake: FakeTaskcast, target: list[str]) -> None:
    code, out, err = run(["sleep", "--input", '{"seconds": 1}', *target])

    assert code == 0
    assert out.strip() in fake.tasks
    assert err == ""


def test_submit_wait_shows_progress_and_prints_the_result(fake: FakeTaskcast, target: list[str]) -> None:
    code, out, err = run(["submit", "sleep", "--input", '{"seconds": 1}', "--wait", *target])

    assert code == 0
    assert json.loads(out) == {"echo": {"seconds": 1}, "type": "sleep"}
    lines = err.splitlines()
    assert lines[0].startswith("task task-") and lines[0].endswith("accepted")
    assert "  0%  PENDING    v1" in lines[1]
    assert " 50%  RUNNING    v3" in err
    assert "100%  SUCCEEDED  v4" in err
    assert lines[-1].startswith("succeeded after ") and lines[-1].endswith(" s, updates via websocket")


@pytest.mark.parametrize(("option", "credential"), [([], "ticket"), (["--websocket-auth", "token"], "token")])
def test_the_websocket_connects_with_a_ticket_unless_told_otherwise(
    fake: FakeTaskcast, target: list[str], option: list[str], credential: str
) -> None:
    code, _, err = run(["sleep", "--wait", *option, *target])

    assert code == 0 and err.splitlines()[-1].endswith("updates via websocket")
    assert [list(query) for query in fake.handshake_queries] == [[credential]]


def test_a_failed_task_exits_1_with_its_error(fake: FakeTaskcast, target: list[str]) -> None:
    code, out, err = run(["fail", "--wait", *target])

    assert code == 1
    assert json.loads(out)["type"].endswith("/job-failed")
    assert "FAILED" in err.splitlines()[-1]


def test_url_and_key_come_from_the_environment(fake: FakeTaskcast, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCAST_URL", fake.http_url)
    monkeypatch.setenv("TASKCAST_API_KEY", API_KEY)

    code, out, _ = run(["sleep", "--wait"])

    assert code == 0
    assert json.loads(out)["type"] == "sleep"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sleep", "--input", "{not json"], "--input is not valid JSON"),
        (["sleep", "--wait"], "no API key"),
        ([], "the following arguments are required: type"),
        (["sleep", "--timeout", "soon"], "invalid float value"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TASKCAST_API_KEY", raising=False)
    monkeypatch.setenv("TASKCAST_URL", "http://127.0.0.1:9")

    code, out, err = run(argv)
    err += capsys.readouterr().err  # argparse writes its own messages to sys.stderr

    assert code == 2
    assert message in err
    assert "Traceback" not in err and out == ""


def test_a_job_type_the_api_refuses_exits_2(target: list[str]) -> None:
    code, _, err = run(["no-such-job", "--wait", *target])

    assert code == 2
    assert "refused the task: Unknown job type (400)" in err


def test_a_wrong_key_exits_2_without_echoing_it(fake: FakeTaskcast) -> None:
    code, _, err = run(["sleep", "--url", fake.http_url, "--api-key", "secret-wrong-key"])

    assert code == 2
    assert "Unauthorized (401)" in err
    assert "secret-wrong-key" not in err


def test_an_unreachable_api_exits_1(closed_port: int) -> None:
    code, _, err = run(["sleep", "--url", f"http://127.0.0.1:{closed_port}", "--api-key", API_KEY])

    assert code == 1
    assert "connection refused" in err and "Traceback" not in err


def test_a_timeout_exits_1(target: list[str]) -> None:
    code, _, err = run(["hang", "--wait", "--timeout", "0.5", *target])

    assert code == 1
    assert "still RUNNING" in err


def test_as_a_real_process(fake: FakeTaskcast) -> None:
    env = {**os.environ, "TASKCAST_URL": fake.http_url, "TASKCAST_API_KEY": API_KEY}
    finished = subprocess.run(
        [sys.executable, "-m", "taskcast_client.client_cli", "sleep", "--input", '{"seconds": 1}', "--wait"],
        env=env, capture_output=True, text=True, timeout=60,
    )

    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout) == {"echo": {"seconds": 1}, "type": "sleep"}
    assert "100%  SUCCEEDED" in finished.stderr
