"""``taskcast cost``: the monthly AWS cost of each way of following a task, as a markdown table."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

from taskcast import cost


def build_parser() -> argparse.ArgumentParser:
    defaults = cost.Scenario()
    parser = argparse.ArgumentParser(
        prog="taskcast cost",
        description="Monthly AWS cost (us-east-1, list prices) of polling, long-polling, WebSocket push and webhooks.",
    )
    add = parser.add_argument
    add("--tasks-per-month", type=float, default=defaults.tasks_per_month, help="tasks created a month")
    add("--duration", type=float, default=defaults.duration_s, help="seconds a task runs")
    add("--poll-interval", type=float, default=defaults.poll_interval_s, help="fixed polling interval, seconds")
    add("--backoff-initial", type=float, default=defaults.backoff_initial_s, help="first backoff delay, seconds")
    add("--backoff-factor", type=float, default=defaults.backoff_factor, help="backoff multiplier")
    add("--backoff-cap", type=float, default=defaults.backoff_cap_s, help="longest backoff delay, seconds")
    add("--long-poll-wait", type=float, default=defaults.long_poll_wait_s, help="?wait= of each long-poll")
    add("--long-poll-check", type=float, default=defaults.long_poll_check_s,
        help="when a held long-poll first re-reads the task, seconds")
    add("--long-poll-max-check", type=float, default=defaults.long_poll_max_check_s,
        help="the longest gap between a held long-poll's re-reads (doubling up to it), seconds")
    add("--subscribers", type=int, default=defaults.subscribers_per_task, help="clients following each task")
    add("--webhook-share", type=float, default=defaults.webhook_share,
        help="share of tasks followed by webhook instead of WebSocket (adds a mixed row when between 0 and 1)")
    add("--webhook-failures", type=float, default=defaults.webhook_failure_share,
        help="share of webhook deliveries that need one retry")
    add("--steps", type=int, default=None, help="progress reports per task (default: min(duration, 10))")
    add("--message-bytes", type=int, default=defaults.message_bytes, help="size of one task.status message")
    add("--format", choices=["markdown", "json"], default="markdown")
    return parser


def scenario_from(args: argparse.Namespace) -> cost.Scenario:
    return cost.Scenario(
        tasks_per_month=args.tasks_per_month,
        duration_s=args.duration,
        poll_interval_s=args.poll_interval,
        backoff_initial_s=args.backoff_initial,
        backoff_factor=args.backoff_factor,
        backoff_cap_s=args.backoff_cap,
        long_poll_wait_s=args.long_poll_wait,
        long_poll_check_s=args.long_poll_check,
        long_poll_max_check_s=args.long_poll_max_check,
        subscribers_per_task=args.subscribers,
        webhook_share=args.webhook_share,
        webhook_failure_share=args.webhook_failures,
        progress_steps=args.steps,
        message_bytes=args.message_bytes,
    )


def _money(value: float) -> str:
    if value == 0:
        return "$0"
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:,.4f}"


def assumptions(s: cost.Scenario) -> list[str]:
    base = cost.base_estimate(s)
    return [
        f"Region {cost.REGION}, list prices taken {cost.PRICES_TAKEN} (first tier, no free tier, no data transfer):",
        *(f"  - {p.unit}: ${p.usd * cost.MILLION:,.4f} per million ({p.source})" for p in cost.PRICES),
        "  - DynamoDB Streams reads by a Lambda trigger are free; the stream consumer is one.",
        f"Load: {s.tasks_per_month:,.0f} tasks a month, {s.duration_s:g} s each, {s.steps} progress step(s), "
        f"{s.subscribers_per_task} subscriber(s) per task, {s.message_bytes} B messages.",
        f"Lambda: handlers {s.handler_memory_mb} MB ({s.rest_handler_ms:g} ms REST, {s.websocket_handler_ms:g} ms "
        f"WebSocket, {s.authorizer_ms:g} ms authorizer, {s.stream_consumer_ms:g} ms stream consumer + "
        f"{s.connection_post_ms:g} ms per {s.fanout_workers} parallel @connections posts, "
        f"{s.webhook_response_ms:g} ms per webhook answer), worker {s.worker_memory_mb} MB, arm64.",
        f"Long-poll re-reads the task after {s.long_poll_check_s:g} s, doubling up to every "
        f"{s.long_poll_max_check_s:g} s, while held; REST authorizer cached "
        f"{cost.AUTHORIZER_CACHE_S} s; every client fetches the result once.",
        f"Base cost, the same for every transport (create, worker, {s.state_writes} state writes with history): "
        f"{_money(base.cost.total)} a month.",
    ]


def markdown_table(s: cost.Scenario) -> str:
    rows = cost.estimates(s)
    push = next(row for row in rows if row.transport == "push-websocket")
    lines = [
        "| transport | client requests / task | API Gateway | Lambda | DynamoDB | SQS "
        "| notification / month | with base / month | x push |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = row.cost.total / push.cost.total if push.cost.total else float("nan")
        lines.append(
            f"| {row.label} | {row.per_task.client_requests:,.1f} | {_money(row.cost.api_gateway)} "
            f"| {_money(row.cost.lambda_)} | {_money(row.cost.dynamodb)} | {_money(row.cost.sqs)} "
            f"| **{_money(row.cost.total)}** | {_money(row.total)} | {ratio:.1f} |"
        )
    return "\n".join(lines)


def as_json(s: cost.Scenario) -> dict[str, Any]:
    return {
        "scenario": asdict(s),
        "region": cost.REGION,
        "prices_taken": cost.PRICES_TAKEN,
        "base": asdict(cost.base_estimate(s).cost) | {"total": cost.base_estimate(s).cost.total},
        "transports": [
            {
                "transport": row.transport,
                "label": row.label,
                "per_task": asdict(row.per_task),
                "monthly": asdict(row.cost) | {"total": row.cost.total, "with_base": row.total},
            }
            for row in cost.estimates(s)
        ],
    }


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        scenario = scenario_from(args)
    except ValueError as error:
        parser.error(str(error))  # exits with status 2 and the usage line, no traceback
    if args.format == "json":
        json.dump(as_json(scenario), out, indent=2)
        out.write("\n")
        return 0
    out.write("\n".join(assumptions(scenario)) + "\n\n" + markdown_table(scenario) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
