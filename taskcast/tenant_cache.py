"""The tenant directory as warm functions hold it: reloaded at most every ``ttl_s`` seconds.

A revoked API key or a dropped webhook secret therefore stops working within ``ttl_s`` of the change
reaching the source (Secrets Manager on AWS), whatever the function's lifetime. If a reload fails (the
secret is unreadable or not valid JSON) the last good directory keeps serving, with a warning logged, for
at most ``max_stale_s`` past its own expiry; after that every lookup raises, so the authorizers fail closed
(API Gateway answers 500) rather than trust a directory nobody can confirm. A failed reload is retried
after ``retry_s``, not on every request. Keys and secrets are never logged, nor the error's text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from taskcast.settings import Settings
from taskcast.tenants import Tenant, TenantDirectory

logger = logging.getLogger(__name__)

DirectoryLoader = Callable[[], TenantDirectory]


class TenantDirectoryUnavailable(RuntimeError):
    """No directory can be trusted: it never loaded, or the last good one is too old."""


class RefreshingTenantDirectory:
    def __init__(
        self,
        load: DirectoryLoader,
        *,
        ttl_s: float = 60.0,
        max_stale_s: float = 300.0,
        retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.ttl_s = ttl_s
        self.max_stale_s = max_stale_s
        self.retry_s = retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._directory: TenantDirectory | None = None
        self._loaded_at = 0.0  # when the directory served now was loaded
        self._next_load_at = 0.0  # no load before this (the TTL, or the retry delay after a failure)

    @classmethod
    def from_settings(cls, settings: Settings, secrets_client: object = None) -> RefreshingTenantDirectory:
        return cls(
            lambda: TenantDirectory.from_settings(settings, secrets_client),
            ttl_s=settings.tenant_cache_ttl_s,
            max_stale_s=settings.tenant_cache_max_stale_s,
        )

    def current(self) -> TenantDirectory:
        """The directory, reloaded first when it is older than the TTL."""
        with self._lock:
            now = self._clock()
            if self._directory is None or now >= self._next_load_at:
                self._reload(now)
            if self._directory is None:
                raise TenantDirectoryUnavailable("the tenant directory could not be loaded")
            if now - self._loaded_at > self.ttl_s + self.max_stale_s:
                raise TenantDirectoryUnavailable("the tenant directory could not be reloaded for too long")
            return self._directory

    def _reload(self, now: float) -> None:
        try:
            directory = self._load()
        except Exception as error:  # noqa: BLE001 - any failure keeps the last good directory, within bounds
            # Only the error's type: a parse error's text could quote part of the secret.
            logger.warning(
                "tenant directory reload failed (%s); %s", type(error).__name__,
                "no directory loaded yet" if self._directory is None
                else f"serving the one loaded {now - self._loaded_at:.0f} s ago",
            )
            self._next_load_at = now + self.retry_s
            return
        self._directory = directory
        self._loaded_at = now
        self._next_load_at = now + self.ttl_s

    def by_api_key(self, api_key: str | None) -> Tenant | None:
        return self.current().by_api_key(api_key)

    def get(self, name: str) -> Tenant | None:
        return self.current().get(name)
