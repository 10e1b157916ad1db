"""``python -m bench.post_cost`` runs: both clients post to its stub and the table has a row for each."""

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
