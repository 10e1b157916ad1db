"""The tenant directory warm functions hold: reloaded after its TTL, so a revoked key dies within it; a failed
reload serves the last good directory for a bounded time, then fails closed; nothing secret is logged."""

from __future__ import annotations

import json
import logging

import pytest

from taskcast.settings import Settings
from taskcast.tenant_cache import RefreshingTenantDirectory, TenantDirectoryUnavailable
from taskcast.tenants import TenantDirectory, parse_tenants

OLD_KEY, NEW_KEY = "key-old-0123456789", "key-new-9876543210"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """The secret as Secrets Manager would answer it: its current text, or a failure."""

    def __init__(self, tenants: dict) -> None:
        self.text = json.dumps(tenants)
        self.failing = False
        self.loads = 0

    def load(self) -> TenantDirectory:
        self.loads += 1
        if self.failing:
            raise ConnectionError(f"secret unreachable ({self.text})")
        return TenantDirectory(parse_tenants(self.text))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source() -> Source:
    return Source({"acme": {"api_key": OLD_KEY, "webhook_secret": "whsec_b2xk"}})


@pytest.fixture
def directory(source: Source, clock: Clock) -> RefreshingTenantDirectory:
    return RefreshingTenantDirectory(source.load, ttl_s=60, max_stale_s=300, retry_s=5, clock=clock)


def revoke(source: Source) -> None:
    source.text = json.dumps({"acme": {"api_key": NEW_KEY, "webhook_secret": "whsec_bmV3"}})


def test_a_revoked_key_is_refused_once_the_ttl_has_passed(directory, source, clock) -> None:
    assert directory.by_api_key(OLD_KEY) is not None
    revoke(source)
    clock.now += 59.9
    assert directory.by_api_key(OLD_KEY) is not None  # still within the TTL: the cached directory
    assert source.loads == 1
    clock.now += 0.1
    assert directory.by_api_key(OLD_KEY) is None
    assert directory.by_api_key(NEW_KEY).name == "acme"
    assert directory.get("acme").webhook_secrets == ("whsec_bmV3",)  # a dropped secret is gone too
    assert source.loads == 2


def test_a_failed_reload_serves_the_last_good_directory_for_a_bounded_time(
    directory, source, clock, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    directory.current()
    source.failing = True
    clock.now += 60
    assert directory.by_api_key(OLD_KEY) is not None
    assert "reload failed (ConnectionError)" in caplog.text
    assert OLD_KEY not in caplog.text and "whsec_" not in caplog.text  # the error's text is never logged
    # Retried after retry_s, not on every lookup.
    loads = source.loads
    clock.now += 4
    directory.current()
    assert source.loads == loads
    clock.now += 1
    directory.current()
    assert source.loads == loads + 1
    # Up to TTL + max stale after the last good load it still serves; past that it fails closed.
    clock.now = 1000.0 + 60 + 300
    assert directory.by_api_key(OLD_KEY) is not None
    clock.now += 0.1
    with pytest.raises(TenantDirectoryUnavailable):
        directory.by_api_key(OLD_KEY)
    # Once the source answers again, so does the directory.
    source.failing = False
    clock.now += 5
    assert directory.by_api_key(OLD_KEY) is not None


def test_no_directory_at_all_fails_closed(source, clock) -> None:
    source.failing = True
    directory = RefreshingTenantDirectory(source.load, clock=clock)
    with pytest.raises(TenantDirectoryUnavailable):
        directory.get("acme")


def test_the_ttl_and_stale_bound_are_settings() -> None:
    defaults = Settings.from_env({})
    assert (defaults.tenant_cache_ttl_s, defaults.tenant_cache_max_stale_s) == (60, 300)
    settings = Settings.from_env({"TASKCAST_TENANT_CACHE_TTL": "2", "TASKCAST_TENANT_CACHE_MAX_STALE": "10",
                                  "TASKCAST_TENANTS": json.dumps({"a": {"api_key": "k"}})})
    directory = RefreshingTenantDirectory.from_settings(settings)
    assert (directory.ttl_s, directory.max_stale_s) == (2, 10)
    assert directory.by_api_key("k").name == "a"
