"""Small pieces several test folders use: a folder's marker, a moto server for a module."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskcast.local.services import MotoService


def mark_tests_below(folder: Path, items: list[pytest.Item], marker: pytest.MarkDecorator) -> None:
    """Mark every collected test under ``folder`` (a conftest hook sees the whole session's items)."""
    for item in items:
        if folder in Path(str(item.fspath)).resolve().parents:
            item.add_marker(marker)


@contextlib.contextmanager
def running_moto() -> Iterator[MotoService]:
    service = MotoService()
    service.start()
    try:
        yield service
    finally:
        service.stop()
