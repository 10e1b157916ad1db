"""Bench parts run and report: the post-cost script measures both clients; the burst is in both modes."""

from __future__ import annotations

import pytest

from bench import post_cost


def test_the_post_cost_script_measures_both_clients(capsys: pytest.CaptureFixture[str]) -> None:
    post_cost.main(["--posts", "5", "--rounds", "2"])
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ") and "client" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["boto3 apigatewaymanagementapi",
                                                          "lean (urllib3 + SigV4Auth)"]
    costs = post_cost.measure(posts=5, rounds=1)
    assert all(cost.cpu_us > 0 and cost.wall_us > 0 and cost.posts == 5 for cost in costs)


def test_the_burst_is_measured_in_both_modes_and_judged_by_its_p95() -> None:
    from bench.__main__ import FULL, QUICK, targets
    from bench.burst import burst_table

    assert FULL.burst.tasks == 200 and 0 < QUICK.burst.tasks <= 200
    row = {"tasks": 200, "samples": 200, "missed": 0, "created_in_s": 1.5, "p50_s": 0.4, "p95_s": 1.2,
           "p99_s": 1.4, "max_s": 1.5}
    assert "| 200 | 1.5 | – | 200 | 0 | 400 | 1,200 | 1,400 | 1,500 |" in burst_table(row)
    result = {"lag": [], "fanout": [], "job40": [], "burst": row}
    [check] = targets(result, QUICK)
    assert check["met"] is False and check["measured"].startswith("1200 ms")
    assert targets({**result, "burst": {**row, "p95_s": 0.8}}, QUICK)[0]["met"] is True


def test_the_call_probe_sees_the_lean_clients_posts() -> None:
    """The fan-out split (Query → last post) reads the posts from the probe: the lean client's too."""
    from bench.probe import CallProbe
    from taskcast.push.connections_client import ConnectionsClient

    probe = CallProbe()
    with probe:
        post_cost.measure(posts=2, rounds=1)
    lean_posts = [call for call in probe.calls if call.operation == "PostToConnection"]
    assert len(lean_posts) == 2 * (20 + 2)  # warm-up and measured posts of both clients
    assert {call.posted for call in lean_posts} == {("t-0123456789", 3)}
    assert ConnectionsClient.post_to_connection.__qualname__ == "ConnectionsClient.post_to_connection"
