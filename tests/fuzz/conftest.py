"""Fuzzing fixtures: one real local stack for the module, with the test tenants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskcast.local.testing import RunningStack, running_stack
from tests.conftest import TENANTS
from tests.support.shared import mark_tests_below

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tests_below(_HERE, items, pytest.mark.e2e)


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with running_stack(tenants=TENANTS, log_level="WARNING") as running:
        yield running
