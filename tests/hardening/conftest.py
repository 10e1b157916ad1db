"""Fixtures of the hardening tests: one real local stack per module with known tenants, one of them in the
middle of a webhook secret rotation (two secrets: the new one first, the old one still signing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskcast.local.testing import RunningStack, running_stack
from tests.conftest import TENANTS
from tests.support.shared import mark_tests_below

_HERE = Path(__file__).resolve().parent

ROTATING_NEW = "whsec_" + "aW5pdGVjaC1uZXctc2VjcmV0LTIwMjY="
ROTATING_OLD = "whsec_" + "aW5pdGVjaC1vbGQtc2VjcmV0LTIwMjU="
HARDENING_TENANTS = {
    **TENANTS,
    "initech": {"api_key": "key-initech-5555555555", "webhook_secrets": [ROTATING_NEW, ROTATING_OLD]},
}
FAST_WEBHOOKS = {"TASKCAST_WEBHOOK_RETRY_SCHEDULE": "0.2,0.5", "TASKCAST_WEBHOOK_TIMEOUT": "5"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tests_below(_HERE, items, pytest.mark.e2e)


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with running_stack(tenants=HARDENING_TENANTS, environment=FAST_WEBHOOKS) as running:
        yield running
