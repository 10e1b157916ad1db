"""Fixtures for the client tests: a scripted fake taskcast on 127.0.0.1 and a port nothing listens on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from taskcast_client.client import TaskcastClient
from tests.clients.fake_taskcast import API_KEY, FakeTaskcast


@pytest.fixture
def fake() -> Iterator[FakeTaskcast]:
    with FakeTaskcast() as server:
        yield server


@pytest.fixture
def client(fake: FakeTaskcast) -> TaskcastClient:
    return TaskcastClient(fake.http_url, API_KEY)


@pytest.fixture
def closed_port() -> int:
    """A port that was free a moment ago: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
