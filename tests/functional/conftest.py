"""The REST harness most functional tests drive (a module may override ``api``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskcast.settings import Settings
from tests.functional.rest_harness import RestHarness


@pytest.fixture
def api(dynamodb: None, settings: Settings) -> Iterator[RestHarness]:  # noqa: ARG001 - the table must exist
    with RestHarness(settings) as harness:
        yield harness
