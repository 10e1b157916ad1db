"""``taskcast webhook-endpoints COMMAND``: the tenant's registered webhook endpoints from a shell.

    taskcast webhook-endpoints create URL [--status S ...] [--type T ...] [--description D]
    taskcast webhook-endpoints list | get ID | delete ID | rotate-secret ID | test ID
    taskcast webhook-endpoints update ID [--url URL] [--status S ...] [--type T ...] [--description D]
                                         [--enable | --disable]
    taskcast webhook-endpoints deliveries ID [--limit N] [--cursor C]
    taskcast webhook-endpoints replay ID --since ISO-8601 [--only-failed]
    taskcast webhook-endpoints resend ID DELIVERY_ID

stdout carries only the API's JSON answer (``jq``-friendly); messages go to stderr. ``create`` and
``rotate-secret`` print the secret, once: store it where the receiver verifies.
Exit codes: 0 done, 1 unreachable or a server error, 2 usage errors or a request the API refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from taskcast_client.client import TaskcastClient, TaskcastError, TaskcastUnreachable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "taskcast webhook-endpoints"


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", action="append", dest="statuses", metavar="STATUS",
                        help="only changes to this status (repeat for several; default: every change)")
    parser.add_argument("--type", action="append", dest="types", metavar="TYPE",
                        help="only tasks of this type (repeat for several; default: every type)")
    parser.add_argument("--description", default=None, help="a note for people")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Manage the tenant's registered webhook endpoints.")
    parser.add_argument("--url", dest="base_url", default=None,
                        help="REST API base URL (default: $TASKCAST_URL or http://127.0.0.1:3000)")
    parser.add_argument("--api-key", default=None, help="API key (default: $TASKCAST_API_KEY)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    create = commands.add_parser("create", help="register an endpoint (prints it with its secret)")
    create.add_argument("endpoint_url", metavar="URL")
    _filter_options(create)
    commands.add_parser("list", help="the endpoints (no secrets)")
    for name, summary in [("get", "one endpoint"), ("delete", "delete an endpoint"),
                          ("rotate-secret", "a new secret; the old one signs beside it for the overlap"),
                          ("test", "send a signed webhook.test now and print the receiver's outcome")]:
        commands.add_parser(name, help=summary).add_argument("id")
    update = commands.add_parser("update", help="change an endpoint")
    update.add_argument("id")
    update.add_argument("--url", dest="endpoint_url", default=None, help="the new URL")
    _filter_options(update)
    switch = update.add_mutually_exclusive_group()
    switch.add_argument("--enable", dest="enabled", action="store_const", const=True, default=None)
    switch.add_argument("--disable", dest="enabled", action="store_const", const=False)
    deliveries = commands.add_parser("deliveries", help="a page of the delivery log, newest first")
    deliveries.add_argument("id")
    deliveries.add_argument("--limit", type=int, default=None)
    deliveries.add_argument("--cursor", default=None, help="the previous page's next")
    replay = commands.add_parser("replay", help="send again what was logged since a time")
    replay.add_argument("id")
    replay.add_argument("--since", required=True, help="ISO-8601 time, e.g. 2026-01-31T12:00:00Z")
    replay.add_argument("--only-failed", action="store_true", help="only what failed (or was not sent)")
    resend = commands.add_parser("resend", help="send one logged delivery again")
    resend.add_argument("id")
    resend.add_argument("delivery_id")
    return parser


def run(client: TaskcastClient, args: argparse.Namespace) -> Any:
    """The API's answer for the parsed command."""
    endpoints = client.endpoints
    command = args.command
    if command == "create":
        return endpoints.create(args.endpoint_url, statuses=args.statuses, types=args.types,
                                description=args.description)
    if command == "list":
        return endpoints.list()
    if command == "get":
        return endpoints.get(args.id)
    if command == "delete":
        endpoints.delete(args.id)
        return {"deleted": args.id}
    if command == "rotate-secret":
        return {"secret": endpoints.rotate_secret(args.id)}
    if command == "test":
        return endpoints.test(args.id)
    if command == "update":
        changes: dict[str, Any] = {"url": args.endpoint_url, "enabled": args.enabled}
        if args.statuses or args.types:
            changes.update(statuses=args.statuses, types=args.types)
        if args.description is not None:
            changes["description"] = args.description
        return endpoints.update(args.id, **changes)
    if command == "deliveries":
        return endpoints.deliveries(args.id, limit=args.limit, cursor=args.cursor)
    if command == "replay":
        return {"queued": endpoints.replay(args.id, args.since, only_failed=args.only_failed)}
    if command == "resend":
        endpoints.resend(args.id, args.delivery_id)
        return {"queued": 1}
    raise AssertionError(f"unknown command {command}")  # argparse allows only the ones above


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # argparse printed its message (or the help)
        return EXIT_USAGE if exit_.code else EXIT_OK
    api_key = args.api_key or os.environ.get("TASKCAST_API_KEY")
    if not api_key:
        err.write(f"{PROG}: error: no API key: pass --api-key or set TASKCAST_API_KEY\n")
        return EXIT_USAGE
    client = TaskcastClient(args.base_url or os.environ.get("TASKCAST_URL") or "http://127.0.0.1:3000", api_key)
    try:
        answer = run(client, args)
    except TaskcastUnreachable as exc:
        err.write(f"{PROG}: {exc.detail}\n")
        return EXIT_FAILED
    except TaskcastError as exc:
        err.write(f"{PROG}: {exc}\n")
        return EXIT_USAGE if exc.status is not None and 400 <= exc.status < 500 else EXIT_FAILED
    out.write(json.dumps(answer, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
