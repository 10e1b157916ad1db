"""The ``taskcast`` command: ``local`` (the whole system on this machine), ``submit`` (send a task and
follow it), ``webhook-receiver`` (print verified webhook deliveries), ``redrive`` (webhook DLQ back to
the retry queue) and ``cost`` (what following a task costs on AWS)."""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

READY_PREFIX = "TASKCAST_READY "


# Subcommands that own their options: everything after the name is handed to the module's main(argv);
# imported only when used, so `taskcast local` starts without loading the clients.
DELEGATED: dict[str, tuple[str, str]] = {
    "submit": ("taskcast_client.client_cli", "submit a task and follow it"),
    "webhook-receiver": ("taskcast_client.webhooks", "receive and verify webhooks"),
    "webhook-endpoints": ("taskcast_client.endpoints_cli", "manage registered webhook endpoints"),
    "redrive": ("taskcast.redrive", "move webhook jobs from the dead-letter queue back to the retry queue"),
    "cost": ("taskcast.cost_cli", "monthly AWS cost of polling versus push versus webhooks"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskcast", description="Asynchronous Request-Reply with push.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    local = commands.add_parser("local", help="run the whole system on this machine (no AWS account, no Docker)")
    local.add_argument("--port", type=int, help="REST API and dashboard port (TASKCAST_HTTP_PORT, 3000; 0: any free)")
    local.add_argument("--ws-port", type=int, help="WebSocket port (TASKCAST_WS_PORT, 3001; 0: any free)")
    local.add_argument("--mgmt-port", type=int, help="@connections port (TASKCAST_MGMT_PORT, 3002; 0: any free)")
    local.add_argument("--s3-port", type=int, help="S3 front port (TASKCAST_S3_PORT, 3003; 0: any free)")
    local.add_argument("--template", type=Path, help="the SAM template to run (default: the project's template.yaml)")
    local.add_argument("--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE",
                       help="template parameter values, as sam deploy takes them")
    local.add_argument("--log-level", default=os.environ.get("TASKCAST_LOCAL_LOG_LEVEL", "INFO"),
                       help="log level of the stack's own messages (default INFO)")
    local.add_argument("--from-source", action="store_true",
                       help="import the handlers from the source tree into this process instead of running the "
                            "built artifacts in environments of their own (TASKCAST_LOCAL_FROM_SOURCE=1)")
    local.add_argument("--ready-json", action="store_true",
                       help=f"also print one '{READY_PREFIX.strip()} {{...}}' line for programs that start the stack")
    local.add_argument("--exit-with-stdin", action="store_true",
                       help="stop when standard input closes (for a parent process that may die)")
    for name, (_module, summary) in DELEGATED.items():
        commands.add_parser(name, help=f"{summary} (taskcast {name} --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in DELEGATED:
        module = importlib.import_module(DELEGATED[arguments[0]][0])
        return module.main(arguments[1:])
    args = _parser().parse_args(arguments)
    if args.command == "local":
        return run_local(args)
    _parser().print_help()
    return 2


def _parameters(pairs: list[str]) -> dict[str, str]:
    parameters = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise SystemExit(f"taskcast local: --parameter-overrides takes KEY=VALUE, not {pair!r}")
        parameters[key] = value
    return parameters


def run_local(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "websockets", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import yaml

    from taskcast.local.resolve import TemplateError
    from taskcast.local.stack import LocalConfig, LocalStack
    from taskcast.tenants import TenantConfigError

    overrides: dict[str, object] = {"parameters": _parameters(args.parameter_overrides)}
    if args.from_source:
        overrides["from_source"] = True
    for name, value in (("http_port", args.port), ("ws_port", args.ws_port), ("mgmt_port", args.mgmt_port),
                        ("s3_port", args.s3_port), ("template_path", args.template)):
        if value is not None:
            overrides[name] = value
    stop = threading.Event()
    try:
        stack = LocalStack(LocalConfig.from_env(**overrides))
    except ValueError as error:
        print(f"taskcast local: a setting is not usable: {error}", file=sys.stderr)
        return 2
    try:
        stack.start()
    except KeyboardInterrupt:
        print("taskcast local: interrupted while starting; stopped.", file=sys.stderr)
        return 130
    except TenantConfigError as error:
        print(f"taskcast local: TASKCAST_TENANTS is not usable: {error}", file=sys.stderr)
        return 2
    except (TemplateError, FileNotFoundError, yaml.YAMLError) as error:
        print(f"taskcast local: cannot run the template {stack.config.template_path}: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            print(f"taskcast local: a port is already in use ({error}). Choose others with --port, --ws-port "
                  "and --mgmt-port (or TASKCAST_HTTP_PORT, TASKCAST_WS_PORT, TASKCAST_MGMT_PORT).", file=sys.stderr)
            return 1
        raise
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    if args.exit_with_stdin:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), name="stdin-watch", daemon=True).start()
    try:
        out.write(banner(stack))
        if args.ready_json:
            out.write(READY_PREFIX + json.dumps(ready_record(stack)) + "\n")
        out.flush()
        while not stop.wait(1.0):
            pass
        out.write("Stopping the local stack...\n")
        out.flush()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stack.stop()
    out.write("Stopped.\n")
    out.flush()
    return 0


def banner(stack) -> str:  # noqa: ANN001 - a LocalStack
    urls = stack.urls()
    lines = [
        f"taskcast local stack is running (template: {stack.config.template_path})",
        "",
        f"  REST API      {urls['http_url']}",
        f"  Dashboard     {urls['dashboard_url']}",
        f"  OpenAPI       {urls['http_url']}/openapi.json",
        f"  WebSocket     {urls['ws_url']}   (connect with ?ticket=<from POST /ws-tickets>)",
        f"  @connections  {urls['management_url']}",
        f"  Lambda API    {urls['lambda_url']}",
        f"  S3 front      {urls['s3_url']}   (presigned URLs, checked as S3 does)",
        f"  AWS (moto)    {urls['moto_url']}",
        "",
        f"  Functions     {functions_line(stack)}",
        "",
    ]
    if stack.tenants_generated:
        (name, tenant), = stack.tenants.items()
        lines += [
            f"  Dev tenant {name!r}, generated for this run:",
            f"    API key         {tenant['api_key']}",
            f"    Webhook secret  {tenant['webhook_secret']}",
            "",
            f"  Try: taskcast submit sleep --input '{{\"seconds\": 5}}' --wait --api-key {tenant['api_key']}"
            + ("" if urls["http_url"] == "http://127.0.0.1:3000" else f" --url {urls['http_url']}"),
        ]
    else:
        lines.append(f"  Tenants: {len(stack.tenants)} from TASKCAST_TENANTS (keys and secrets are not shown)")
    lines.append("")
    if stack.config.allow_loopback_callbacks:
        lines += [
            "  WARNING: loopback http callbacks are ALLOWED (TASKCAST_ALLOW_LOOPBACK_CALLBACKS=1): webhooks may",
            "  target http://127.0.0.1:*. Private and link-local addresses stay refused. Never do this on AWS.",
            "",
        ]
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines) + "\n"


def functions_line(stack) -> str:  # noqa: ANN001 - a LocalStack
    if stack.config.from_source:
        return f"{len(stack.functions)} imported from the source tree into this process (--from-source)"
    built = stack.artifacts
    how = "reused" if built.reused else f"built in {built.seconds:.1f} s"
    return (f"{len(stack.functions)} run from sam build artifacts ({built.runtime}, {built.architecture}; {how}: "
            f"{built.build_dir}), each in processes of its own through the Lambda Runtime API")


def ready_record(stack) -> dict[str, object]:  # noqa: ANN001 - a LocalStack
    """What a program that started the stack needs: URLs, resources, and the generated tenant if any."""
    record: dict[str, object] = {**stack.describe(), "pid": os.getpid()}
    if stack.tenants_generated:
        (name, tenant), = stack.tenants.items()
        record["generated_tenant"] = {"name": name, **tenant}
    return record


if __name__ == "__main__":
    sys.exit(main())
