"""The in-process slot handover between webhook attempts of one tenant."""

from __future__ import annotations

import pytest

from taskcast.webhooks.handoff import Handoffs


def test_nobody_waiting_means_no_handover_and_no_renewal() -> None:
    handoffs = Handoffs()
    renewals: list[int] = []
    other = handoffs.join("globex")

    assert handoffs.hand_over("acme", 0, lambda: renewals.append(0)) is False
    assert renewals == []
    assert handoffs.leave(other) is None


def test_the_first_waiter_of_the_tenant_gets_the_slot_after_its_lease_is_renewed() -> None:
    handoffs = Handoffs()
    renewals: list[int] = []
    first, second = handoffs.join("acme"), handoffs.join("acme")

    assert handoffs.hand_over("acme", 3, lambda: renewals.append(3)) is True

    assert renewals == [3]
    assert first.handed.is_set() and not second.handed.is_set()
    assert handoffs.leave(first) == 3
    assert handoffs.leave(second) is None


def test_a_waiter_that_left_is_never_handed_a_slot() -> None:
    handoffs = Handoffs()
    gone = handoffs.join("acme")
    assert handoffs.leave(gone) is None

    assert handoffs.hand_over("acme", 1, lambda: None) is False
    assert gone.slot is None


def test_a_failed_renewal_hands_nothing_over() -> None:
    handoffs = Handoffs()
    waiter = handoffs.join("acme")

    def refuse() -> None:
        raise RuntimeError("throttled")

    with pytest.raises(RuntimeError):
        handoffs.hand_over("acme", 2, refuse)
    assert not waiter.handed.is_set()
    assert handoffs.leave(waiter) is None
