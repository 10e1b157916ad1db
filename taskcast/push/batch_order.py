"""Ordering decisions for one stream batch, as plain functions: which records form one task's chain,
how a chain's outcomes follow from its first failure, and what the partial batch response names.

Records of different tasks are independent (order is promised per task, not across the shard); the
records of one task form a chain handled in stream order, i.e. in version order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum


class RecordOutcome(StrEnum):
    DONE = "done"  # handled (pushed, or nothing to push)
    FAILED = "failed"  # its own failure: the stream delivers it again
    HELD = "held"  # an earlier record of the same task failed; it waits for that one


def chains(task_ids: Sequence[str]) -> dict[str, list[int]]:
    """The record indices of each task, in stream order; tasks in the order they first appear."""
    grouped: dict[str, list[int]] = {}
    for index, task_id in enumerate(task_ids):
        grouped.setdefault(task_id, []).append(index)
    return grouped


def settle_chain(indices: Sequence[int], first_failure: int | None) -> list[tuple[int, RecordOutcome]]:
    """Each record of a chain with its outcome, given the position (in the chain) of its first failure:
    the records before it are done, it failed, the ones after it are held (a later version must not
    overtake an earlier one that failed)."""
    stop = len(indices) if first_failure is None else first_failure
    outcomes = [(index, RecordOutcome.DONE) for index in indices[:stop]]
    if first_failure is not None:
        outcomes.append((indices[first_failure], RecordOutcome.FAILED))
        outcomes.extend((index, RecordOutcome.HELD) for index in indices[first_failure + 1 :])
    return outcomes


def failed_items(sequence_numbers: Sequence[str], outcomes: Iterable[tuple[int, RecordOutcome]]) -> list[str]:
    """The ``batchItemFailures`` identifiers: every failed or held record, in stream order, once."""
    failed = sorted({index for index, outcome in outcomes if outcome is not RecordOutcome.DONE})
    return [sequence_numbers[index] for index in failed]


def delivered_again_from(sequence_numbers: Sequence[str], failed: Iterable[str]) -> int | None:
    """The index from which Lambda delivers the batch again after a partial response: the lowest failed
    sequence number (in stream order). Everything before it is checkpointed; everything from it on,
    failed or not, comes back. None when nothing failed."""
    failed_set = set(failed)
    return next((index for index, number in enumerate(sequence_numbers) if number in failed_set), None)
