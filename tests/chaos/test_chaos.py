"""The reduced fault-injection run (``make test``): 60 tasks on a real local stack with every kind of fault.
Full size: ``python -m tests.chaos --tasks 1000 --concurrency 40`` (figures in docs/reliability.md)."""

from __future__ import annotations

import pytest

from tests.chaos.run import ChaosConfig, run_chaos


@pytest.mark.e2e
@pytest.mark.timeout(400)
def test_nothing_is_lost_while_receivers_fail_clients_drop_records_turn_poison_and_pollers_restart() -> None:
    report = run_chaos(ChaosConfig(tasks=60, concurrency=24))
    figures = report.as_json()

    assert report.violations == [], figures
    assert report.tasks == report.tasks_terminal == 60, figures
    lost = (report.lost_websocket_terminal, report.lost_webhook_terminal, report.lost_webhook_versions)
    assert lost == (0, 0, 0), figures
    assert report.webhook_dead_lettered == 0 and report.webhook_unverified == 0, figures
    assert report.webhook_deliveries == report.versions, figures  # every version of every task, once counted
    # The faults really happened.
    assert set(report.webhook_faults) == {"http_500", "timeout", "reset"}, figures
    assert report.webhook_retries >= sum(report.webhook_faults.values()), figures
    assert report.websocket_drops > 0 and report.websocket_reconnects >= report.websocket_drops, figures
    assert report.poison_records > 0 and report.poison_raised == 2 * report.poison_records, figures
    assert report.poller_restarts == 2, figures
