"""Fixtures shared by the tests of the built artifacts: the Lambda runtime's interpreter and a moto server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskcast.local.runtime_env import lambda_runtime_python
from taskcast.local.services import MotoService
from tests.support.shared import running_moto


@pytest.fixture(scope="module")
def runtime_python() -> Path:
    return lambda_runtime_python()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoService]:
    with running_moto() as service:
        yield service
