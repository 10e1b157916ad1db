"""The cost model: one case checked by hand, then the shape of the model (monotonic, push vs polling)."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskcast import cost
from taskcast.cost_cli import main

HAND_CHECKED = cost.Scenario(
    tasks_per_month=1_000_000,
    duration_s=40,
    poll_interval_s=2,
    subscribers_per_task=1,
    handler_memory_mb=512,
    rest_handler_ms=20,
    authorizer_ms=5,
)


def test_two_second_polling_of_a_40_second_task_checked_by_hand() -> None:
    # Polls at 2, 4, …, 40 s: 20 polls, the last one sees the end; then one GET of the result.
    # One REST call = $3.50/M (gateway) + $0.20/M (Lambda request) + 0.5 GB x 0.020 s x $0.0000133334
    # (= $0.133334/M) + one strongly consistent read $0.125/M = $3.958334 per million calls.
    # The authorizer runs once (cached 300 s): $0.20/M + 0.5 GB x 0.005 s x $0.0000133334 = $0.2333335/M.
    # 21 calls x $3.958334 + $0.2333335 = $83.3583475 per million tasks.
    row = cost.by_transport(HAND_CHECKED)["poll-2s"]
    assert row.per_task.rest_requests == 21
    assert row.per_task.dynamodb_read_units == 21
    assert row.per_task.lambda_requests == 22
    assert row.cost.total == pytest.approx(83.3583475, rel=1e-9)
    assert row.cost.api_gateway == pytest.approx(73.50)
    assert row.cost.dynamodb == pytest.approx(2.625)
    assert row.cost.sqs == 0


def test_backoff_schedule_matches_the_known_52_second_experience() -> None:
    times = cost.poll_times(40, cost.backoff_delays(1, 1.5, 28))
    assert times == pytest.approx([1, 2.5, 4.75, 8.125, 13.1875, 20.78125, 32.171875, 49.2578125])
    capped = list(zip(range(12), cost.backoff_delays(1, 1.5, 28), strict=False))
    assert max(delay for _, delay in capped) == 28


def test_long_poll_returns_at_each_change_or_after_the_wait() -> None:
    assert cost.long_poll_holds([0, 40], 25) == [0, 25, 15]
    assert cost.long_poll_holds([0, 10, 20], 25) == [0, 10, 10]


def test_websocket_messages_are_metered_in_32_kb_units() -> None:
    assert cost.message_units(1) == 1
    assert cost.message_units(32 * 1024) == 1
    assert cost.message_units(32 * 1024 + 1) == 2
    small = cost.by_transport(cost.Scenario(message_bytes=400))["push-websocket"]
    large = cost.by_transport(cost.Scenario(message_bytes=40_000))["push-websocket"]
    # The subscribe frame stays one unit; every message sent to the client doubles.
    sent = small.per_task.websocket_messages - 1
    assert large.per_task.websocket_messages == 1 + 2 * sent


@settings(max_examples=50, deadline=None)
@given(
    tasks=st.floats(min_value=1, max_value=1e9),
    more=st.floats(min_value=1.01, max_value=100),
    duration=st.floats(min_value=0, max_value=3600),
    subscribers=st.integers(min_value=1, max_value=1000),
)
def test_every_transport_costs_more_with_more_tasks(
    tasks: float, more: float, duration: float, subscribers: int
) -> None:
    fewer = cost.estimates(cost.Scenario(tasks_per_month=tasks, duration_s=duration, subscribers_per_task=subscribers))
    larger = cost.estimates(
        cost.Scenario(tasks_per_month=tasks * more, duration_s=duration, subscribers_per_task=subscribers)
    )
    for low, high in zip(fewer, larger, strict=True):
        assert high.cost.total > low.cost.total
        assert high.total > low.total


@settings(max_examples=50, deadline=None)
@given(
    interval=st.floats(min_value=0.5, max_value=60),
    shorter=st.floats(min_value=0.1, max_value=0.9),
    duration=st.floats(min_value=1, max_value=3600),
)
def test_polling_more_often_never_costs_less(interval: float, shorter: float, duration: float) -> None:
    slow = cost.estimates(cost.Scenario(duration_s=duration, poll_interval_s=interval))[0]
    fast = cost.estimates(cost.Scenario(duration_s=duration, poll_interval_s=interval * shorter))[0]
    assert fast.cost.total >= slow.cost.total
    assert fast.per_task.client_requests >= slow.per_task.client_requests


def test_polling_twice_as_often_on_a_long_task_nearly_doubles_its_cost() -> None:
    every_4s = cost.estimates(cost.Scenario(duration_s=600, poll_interval_s=4))[0]
    every_2s = cost.estimates(cost.Scenario(duration_s=600, poll_interval_s=2))[0]
    assert 1.9 < every_2s.cost.total / every_4s.cost.total < 2.0


@settings(max_examples=50, deadline=None)
@given(
    duration=st.floats(min_value=60, max_value=6 * 3600),
    subscribers=st.integers(min_value=1, max_value=5000),
    steps=st.integers(min_value=1, max_value=10),
)
def test_push_is_cheaper_than_two_second_polling_for_long_tasks(duration: float, subscribers: int, steps: int) -> None:
    rows = cost.by_transport(
        cost.Scenario(duration_s=duration, subscribers_per_task=subscribers, progress_steps=steps)
    )
    assert rows["push-websocket"].cost.total < rows["poll-2s"].cost.total
    assert rows["push-websocket"].per_task.client_requests < rows["poll-2s"].per_task.client_requests


def test_a_held_long_poll_pays_for_lambda_while_it_waits() -> None:
    rows = cost.by_transport(cost.Scenario(duration_s=600))
    assert rows["long-poll"].cost.lambda_ > rows["poll-2s"].cost.lambda_


def test_the_mixed_row_appears_only_when_some_tasks_use_webhooks() -> None:
    assert "push-mixed" not in cost.by_transport(cost.Scenario(webhook_share=0))
    assert "push-mixed" not in cost.by_transport(cost.Scenario(webhook_share=1))
    rows = cost.by_transport(cost.Scenario(webhook_share=0.25, subscribers_per_task=3))
    expected = 0.75 * rows["push-websocket"].cost.total + 0.25 * rows["webhook"].cost.total
    assert rows["push-mixed"].cost.total == pytest.approx(expected)


def test_every_attempt_is_a_queue_hop_and_failures_add_more() -> None:
    # 10 posts per task (PENDING, RUNNING, 7 progress reports, the end), each handed off through the delivery
    # queue (sent, received, deleted: 3 SQS requests); a tenth retried: 3 requests more each.
    first = cost.by_transport(cost.Scenario(progress_steps=8))["webhook"]
    assert first.per_task.sqs_requests == pytest.approx(30.0)
    retried = cost.by_transport(cost.Scenario(webhook_failure_share=0.1, progress_steps=8))["webhook"]
    assert retried.per_task.sqs_requests == pytest.approx(33.0)


@pytest.mark.parametrize(
    "changes",
    [{"tasks_per_month": 0}, {"subscribers_per_task": 0}, {"poll_interval_s": 0}, {"webhook_share": 1.5},
     {"backoff_factor": 0.5}, {"duration_s": -1}],
)
def test_impossible_scenarios_are_refused(changes: dict) -> None:
    with pytest.raises(ValueError):
        cost.Scenario(**changes)


def test_cli_prints_assumptions_then_a_markdown_table() -> None:
    out = io.StringIO()
    assert main(["--tasks-per-month", "500000", "--duration", "120", "--subscribers", "2",
                 "--webhook-share", "0.5"], out=out) == 0
    text = out.getvalue()
    assumptions, table = text.split("\n\n", 1)
    assert "us-east-1" in assumptions and cost.PRICES_TAKEN in assumptions
    assert "500,000 tasks a month, 120 s each" in assumptions
    lines = table.strip().splitlines()
    assert lines[0].startswith("| transport |")
    labels = [line.split("|")[1].strip() for line in lines[2:]]
    assert labels == [
        "polling every 2 s",
        "polling, backoff 1 s x1.5 up to 28 s",
        "long-poll ?wait=25",
        "WebSocket push",
        "webhooks (one callback per task)",
        "WebSocket + webhooks (50%)",
    ]
    assert lines[5].endswith("| 1.0 |")  # push against itself


def test_cli_json_matches_the_model() -> None:
    out = io.StringIO()
    assert main(["--duration", "40", "--format", "json"], out=out) == 0
    data = json.loads(out.getvalue())
    expected = cost.by_transport(cost.Scenario(duration_s=40))
    assert {row["transport"] for row in data["transports"]} == set(expected)
    for row in data["transports"]:
        assert row["monthly"]["total"] == pytest.approx(expected[row["transport"]].cost.total)


def test_cli_refuses_bad_input_with_a_message_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--subscribers", "0"])
    assert exit_info.value.code == 2
    assert "subscribers_per_task must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--duration", "forty"])


def test_each_websocket_subscriber_first_fetches_a_ticket_that_its_connect_uses_up() -> None:
    one = cost.by_transport(cost.Scenario(subscribers_per_task=1))["push-websocket"].per_task
    three = cost.by_transport(cost.Scenario(subscribers_per_task=3))["push-websocket"].per_task
    # Per subscriber: POST /ws-tickets and GET of the result through REST; the ticket written, then deleted.
    assert three.rest_requests - one.rest_requests == 2 * 2
    assert one.rest_requests == 2 and one.client_requests == 4  # ticket, connect, subscribe, result
    per_subscriber_writes = (three.dynamodb_write_units - one.dynamodb_write_units) / 2
    assert per_subscriber_writes == 2 + 2 + 1  # ticket put and delete, subscription begun and confirmed, $disconnect


def test_the_rest_authorizer_is_cached_as_long_as_the_template_says() -> None:
    from taskcast.local.template import load_template

    authorizer = load_template()["Resources"]["RestApi"]["Properties"]["Auth"]["Authorizers"]["TenantAuthorizer"]
    assert authorizer["Identity"]["ReauthorizeEvery"] == cost.AUTHORIZER_CACHE_S
