"""The stream batch's ordering decisions: chains per task, outcomes after a failure, the response."""

from __future__ import annotations

from taskcast.push.batch_order import RecordOutcome, chains, delivered_again_from, failed_items, settle_chain

DONE, FAILED, HELD = RecordOutcome.DONE, RecordOutcome.FAILED, RecordOutcome.HELD


def test_chains_keep_each_tasks_records_in_stream_order() -> None:
    assert chains(["a", "b", "a", "c", "b", "a"]) == {"a": [0, 2, 5], "b": [1, 4], "c": [3]}
    assert list(chains(["b", "a", "b"])) == ["b", "a"]
    assert chains([]) == {}


def test_a_chain_without_failure_is_done() -> None:
    assert settle_chain([0, 2, 5], None) == [(0, DONE), (2, DONE), (5, DONE)]


def test_a_failure_holds_the_chains_later_records_only() -> None:
    assert settle_chain([0, 2, 5, 7], 1) == [(0, DONE), (2, FAILED), (5, HELD), (7, HELD)]
    assert settle_chain([3], 0) == [(3, FAILED)]
    assert settle_chain([1, 4], 1) == [(1, DONE), (4, FAILED)]


def test_the_response_names_exactly_the_failed_and_held_records_in_stream_order_once() -> None:
    numbers = ["100", "200", "300", "400", "500"]
    outcomes = [(0, DONE), (3, HELD), (1, FAILED), (2, DONE), (4, DONE), (1, FAILED)]
    assert failed_items(numbers, outcomes) == ["200", "400"]
    assert failed_items(numbers, [(index, DONE) for index in range(5)]) == []


def test_lambda_delivers_again_from_the_lowest_failed_record_so_later_ones_of_other_tasks_come_back() -> None:
    # Task a: records 0, 2, 4; task b: 1, 3. a's record 2 failed (4 held); b's went through.
    numbers = ["100", "200", "300", "400", "500"]
    per_task = chains(["a", "b", "a", "b", "a"])
    outcomes = settle_chain(per_task["a"], 1) + settle_chain(per_task["b"], None)
    failed = failed_items(numbers, outcomes)
    assert failed == ["300", "500"]

    start = delivered_again_from(numbers, failed)
    assert start == 2
    # b's record 3 was handled and is not named, yet it comes back: the FANOUT marker makes it a no-op.
    assert "400" in numbers[start:] and "400" not in failed
    assert delivered_again_from(numbers, []) is None
