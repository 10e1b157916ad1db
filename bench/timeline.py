"""Where the time of one change goes, from the probed calls: the write, the stream consumer's subscriber
Query (stream poll + invocation before it), the Query itself, and the posts (or webhook arrivals)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bench.probe import Call
from bench.report import percentile

# Picks the change to trace for a task from one STATE write: (task id, status, version) -> trace it?
Selector = Callable[[str, str, int], bool]


def breakdown(
    calls: list[Call],
    selector: Selector,
    subscriptions_table: str,
    arrivals: Mapping[str, float] | None = None,
) -> dict[str, float | int]:
    """p50/p99 of each step over the traced changes.

    ``arrivals`` (task id -> when its webhook arrived) switches to webhook timing: the first attempt
    starts beside the Query, so the delivery is timed from the Query's start; WebSocket posts follow
    the Query and are timed from its end.
    """
    write_end: dict[str, float] = {}
    version_of: dict[str, int] = {}
    queries: dict[str, list[tuple[float, float]]] = {}
    first_post: dict[str, float] = {}
    last_post: dict[str, float] = {}
    posts = 0
    for call in calls:
        for task_id, status, version in call.state_writes:
            if task_id not in write_end and selector(task_id, status, version):
                write_end[task_id] = call.end
                version_of[task_id] = version
        if call.operation == "Query" and call.table == subscriptions_table:
            for task_id in call.names & write_end.keys():
                if call.start >= write_end[task_id]:
                    queries.setdefault(task_id, []).append((call.start, call.end))
        if call.posted and version_of.get(call.posted[0]) == call.posted[1]:
            posts += 1
            task_id = call.posted[0]
            first_post[task_id] = min(first_post.get(task_id, call.start), call.start)
            last_post[task_id] = max(last_post.get(task_id, 0.0), call.end)
    if arrivals is not None:
        last_post = {task_id: at for task_id, at in arrivals.items() if task_id in write_end}
        first_post = dict(last_post)
    # The consumer's Query for the traced record is the last one before that record's first post (an
    # earlier record of the same task, still in the stream, may have been queried after the write too).
    query: dict[str, tuple[float, float]] = {}
    for task_id, found in queries.items():
        before = [q for q in found if q[0] <= first_post.get(task_id, float("inf"))]
        query[task_id] = before[-1] if before else found[0]
    after = 0 if arrivals is not None else 1
    poll = [query[t][0] - write_end[t] for t in query]
    query_s = [query[t][1] - query[t][0] for t in query]
    post_s = [last_post[t] - query[t][after] for t in query if t in last_post]
    return {
        "changes_traced": len(query),
        "posts_seen": posts,
        "stream_poll_p50_s": percentile(poll, 50),
        "stream_poll_p99_s": percentile(poll, 99),
        "subscriber_query_p50_s": percentile(query_s, 50),
        "subscriber_query_p99_s": percentile(query_s, 99),
        "posts_p50_s": percentile(post_s, 50),
        "posts_p99_s": percentile(post_s, 99),
    }
