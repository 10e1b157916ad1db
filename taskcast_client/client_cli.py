"""``taskcast submit TYPE --input JSON [--wait]``: submit a task and, with ``--wait``, follow it to the end.
``taskcast submit digest --file PATH [--content-type T]`` uploads the file straight to S3 with its task
(the task starts once the file lands) instead of sending an inline input.

stdout carries only data (the task id without ``--wait``; the result JSON, or the error document, with it),
so the command composes with ``jq``; progress and messages go to stderr.
Exit codes: 0 succeeded (or accepted, without ``--wait``), 1 failed / cancelled / unreachable / timed out,
2 usage errors (bad arguments or input, or a request the API refused as invalid).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO

from taskcast_client.client import TaskcastClient, TaskcastError, TaskcastUnreachable, TaskTimeout

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
BAR_WIDTH = 24


def render_progress(message: dict[str, Any], width: int = BAR_WIDTH) -> str:
    """``[############------------]  50%  RUNNING    v3`` for one ``task.status`` update."""
    progress = max(0, min(100, int(message.get("progress") or 0)))
    filled = round(width * progress / 100)
    return f"[{'#' * filled}{'-' * (width - filled)}] {progress:3d}%  {message['status']:<9}  v{message['version']}"


class ProgressLine:
    """Redraws one line on a terminal; writes a line per update elsewhere (logs, pipes, CI)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._drawn = False

    def update(self, message: dict[str, Any]) -> None:
        line = render_progress(message)
        if self.tty:
            self.stream.write(f"\r\x1b[2K{line}")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, note: str = "") -> None:
        if self._drawn:
            self.stream.write("\n")  # keep the last bar on screen
            self._drawn = False
        if note:
            self.stream.write(note + "\n")
        self.stream.flush()


class _UsageError(Exception):
    """Bad arguments: the message (if any) is for the user, the exit code is 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskcast submit",
        description="Submit a task to taskcast and optionally wait for its result (push, with polling fallback).",
    )
    parser.add_argument("type", help="job type, for example sleep, fail or invoke")
    parser.add_argument("--input", default="null", help='job input as JSON, for example \'{"seconds": 5}\'')
    parser.add_argument("--file", default=None, help="upload this file to S3 as the task's input (instead of --input)")
    parser.add_argument("--content-type", default=None, help="with --file: its media type (default: from its name)")
    parser.add_argument("--wait", action="store_true", help="follow the task, showing progress, and print its result")
    parser.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    parser.add_argument("--url", default=None, help="REST API base URL (default: $TASKCAST_URL or http://127.0.0.1:3000)")
    parser.add_argument("--api-key", default=None, help="API key (default: $TASKCAST_API_KEY)")
    parser.add_argument("--websocket-url", default=None, help="WebSocket URL (default: the task's links.websocket)")
    parser.add_argument(
        "--websocket-auth", choices=("ticket", "token"), default="ticket",
        help="how the WebSocket connect is authenticated: a single-use ticket from POST /ws-tickets (default), "
        "or the API key as ?token= (less safe: URLs end up in logs)",
    )
    parser.add_argument("--callback-url", default=None, help="webhook URL to receive every status change")
    parser.add_argument("--idempotency-key", default=None, help="resubmitting with the same key returns the same task")
    return parser


class _Done(Exception):
    """``--help`` was printed: nothing else to do."""


def _parse(argv: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its message already
        if exit_.code:
            raise _UsageError() from None
        raise _Done() from None


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["submit"]:  # called with the subcommand still in front
        args_list = args_list[1:]
    try:
        args = _parse(args_list)
        job_input = _json_input(args.input)
        if args.file is not None and args.input != "null":
            raise _UsageError("--file and --input cannot be used together")
        if args.file is not None and not os.path.isfile(args.file):
            raise _UsageError(f"--file {args.file}: no such file")
        url = args.url or os.environ.get("TASKCAST_URL") or "http://127.0.0.1:3000"
        api_key = args.api_key or os.environ.get("TASKCAST_API_KEY")
        if not api_key:
            raise _UsageError("no API key: pass --api-key or set TASKCAST_API_KEY")
    except _Done:
        return EXIT_OK
    except _UsageError as exc:
        if str(exc):
            err.write(f"taskcast submit: error: {exc}\n")
        return EXIT_USAGE

    client = TaskcastClient(url, api_key, websocket_url=args.websocket_url, websocket_auth=args.websocket_auth)
    try:
        return _run(client, args, job_input, out, err)
    except KeyboardInterrupt:
        err.write("\ninterrupted; the task keeps running on the server\n")
        return EXIT_INTERRUPTED


def _json_input(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _UsageError(f"--input is not valid JSON ({exc})") from None


def _run(client: TaskcastClient, args: argparse.Namespace, job_input: Any, out: TextIO, err: TextIO) -> int:
    try:
        if args.file is not None:
            handle = client.submit_file(args.type, args.file, content_type=args.content_type,
                                        callback_url=args.callback_url)
        else:
            handle = client.submit(args.type, job_input, callback_url=args.callback_url,
                                   idempotency_key=args.idempotency_key)
    except TaskcastUnreachable as exc:
        err.write(f"taskcast submit: {exc.detail}\n")
        return EXIT_FAILED
    except TaskcastError as exc:
        err.write(f"taskcast submit: the API refused the task: {exc}\n")
        return EXIT_USAGE if exc.status is not None and 400 <= exc.status < 500 else EXIT_FAILED

    if not args.wait:
        out.write(f"{handle.id}\n")
        return EXIT_OK

    err.write(f"task {handle.id} accepted\n")
    progress = ProgressLine(err)
    if handle.monitor:
        progress.update({"status": handle.monitor["status"], "version": handle.monitor["version"],
                         "progress": handle.monitor.get("progress", 0)})
    started = time.monotonic()
    try:
        outcome = handle.wait(timeout=args.timeout, on_update=progress.update)
    except TaskTimeout as exc:
        progress.finish()
        err.write(f"taskcast submit: {exc.detail}\n")
        return EXIT_FAILED
    except TaskcastError as exc:
        progress.finish()
        err.write(f"taskcast submit: {exc}\n")
        return EXIT_FAILED
    elapsed = time.monotonic() - started
    progress.finish(f"{outcome.status.lower()} after {elapsed:.1f} s, updates via {outcome.transport}")

    if outcome.succeeded:
        out.write(_as_json(outcome.result) + "\n")
        return EXIT_OK
    error = outcome.error or {}
    err.write(f"task {handle.id} {outcome.status}: {error.get('title', '')}: {error.get('detail', '')}\n")
    out.write(_as_json(error) + "\n")
    return EXIT_FAILED


def _as_json(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return json.dumps(value, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    sys.exit(main())
