"""``python -m bench.post_cost``: the CPU one ``PostToConnection`` costs the poster, boto3's client against
the lean one (``taskcast.push.connections_client``), side by side.

Both post to the same local keep-alive stub of the ``@connections`` endpoint (a 200 for every POST) from
one thread; the figure is that thread's CPU time (``time.thread_time``) per post, so the stub's own work
is not counted. Each round posts ``--posts`` frames per client, the clients alternating round by round;
the table shows the medians over ``--rounds`` rounds. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from taskcast.local.httpserver import LocalHTTPServer, QuietHandler
from taskcast.push.connections_client import ConnectionsClient
from taskcast.push.fanout import management_client

FRAME = b'{"type":"task.status","task_id":"t-0123456789","version":3,"status":"RUNNING","progress":42}'


class _AcceptEveryPost(QuietHandler):
    def do_POST(self) -> None:  # noqa: N802 - the base class's naming
        self.read_body()
        self.send(200, b"", [("x-amzn-RequestId", "stub")])


@dataclass(frozen=True)
class PostCost:
    client: str
    cpu_us: float  # median over rounds of the posting thread's CPU per post
    wall_us: float  # median over rounds of the elapsed time per post
    rounds: int
    posts: int  # per round


def _round(post: Callable[[], Any], posts: int) -> tuple[float, float]:
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(posts):
        post()
    return (time.thread_time() - cpu) / posts * 1e6, (time.perf_counter() - wall) / posts * 1e6


def measure(posts: int = 300, rounds: int = 5) -> list[PostCost]:
    """Per-post cost of each client against a fresh local stub."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    stub = LocalHTTPServer(_AcceptEveryPost, owner=None, name="post-cost-stub")
    stub.start()
    try:
        clients: dict[str, Any] = {
            "boto3 apigatewaymanagementapi": management_client(stub.url, 4),
            "lean (urllib3 + SigV4Auth)": ConnectionsClient(stub.url, pool_size=4),
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        for client in clients.values():  # warm up: connection, signer, boto3's loaders
            for _ in range(20):
                client.post_to_connection(ConnectionId="warm-up", Data=FRAME)
        for _ in range(rounds):
            for name, client in clients.items():
                samples[name].append(_round(lambda c=client: c.post_to_connection(ConnectionId="c1", Data=FRAME),
                                            posts))
    finally:
        stub.stop()
    return [PostCost(name, statistics.median(cpu for cpu, _ in rows), statistics.median(wall for _, wall in rows),
                     rounds, posts) for name, rows in samples.items()]


def table(costs: Sequence[PostCost]) -> str:
    reference = costs[0].cpu_us
    lines = ["| client | CPU per post (µs, median) | wall per post (µs, median) | CPU vs boto3 |",
             "|---|---:|---:|---:|"]
    lines += [f"| {cost.client} | {cost.cpu_us:,.0f} | {cost.wall_us:,.0f} | {cost.cpu_us / reference:.2f}× |"
              for cost in costs]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.post_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=500, help="posts per client per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    costs = measure(args.posts, args.rounds)
    print(f"{args.rounds} rounds of {args.posts} posts per client, one thread, local keep-alive stub\n")
    print(table(costs))


if __name__ == "__main__":
    main()
