"""What the webhook endpoint routes do, apart from HTTP: create, change, rotate, replay, resend, test.

Errors are exceptions the routes turn into problems: ``InvalidEndpoint`` (400), ``CallbackRefused`` (400,
the URL guard), ``EndpointLimit`` (409), ``EndpointDisabled`` (409), ``ReplayBusy`` and ``TooSoon`` (429);
an unknown endpoint, or another tenant's, is ``None`` (404, the same answer either way).
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from taskcast.endpoint_store import DeliveryPage, EndpointDeliveryLog, EndpointSecrets, EndpointStore, iso_time
from taskcast.models import now_iso
from taskcast.webhooks.endpoint_attempts import Sender
from taskcast.webhooks.endpoints import (
    MAX_REPLAY,
    MAX_REPLAY_BACKLOG,
    TEST_EVENT_INTERVAL_S,
    Endpoint,
    EndpointFilter,
    SigningSecret,
    backlog_wait,
    check_description,
    new_endpoint_id,
    new_secret,
    paced,
    replay_window,
    rotated,
    signing_secrets,
    to_replay,
    wait_for_test_event,
)
from taskcast.webhooks.format import WebhookJob, signed_headers
from taskcast.webhooks.retry_queue import RetryQueue

TEST_EVENT = "webhook.test"
# Log entries one replay reads at most (oldest first): several attempts per webhook, for MAX_REPLAY webhooks.
REPLAY_READ_LIMIT = 10 * MAX_REPLAY
BOOKING_ATTEMPTS = 5


class EndpointLimit(Exception):
    """The tenant has as many endpoints as it may."""


class ReplayBusy(Exception):
    """Replays of the endpoint were being booked at the same moment, again and again."""


class TooSoon(Exception):
    """A limit of the endpoint's own pace: try again after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EndpointDisabled(Exception):
    """The endpoint is disabled: enable it first (replays to a disabled endpoint would only be logged)."""


@dataclass(frozen=True)
class TestOutcome:
    status_code: int | None
    outcome: str  # "delivered" or "failed"
    error: str | None = None


@dataclass
class EndpointAdmin:
    endpoints: EndpointStore
    secrets: EndpointSecrets
    log: EndpointDeliveryLog
    queue: RetryQueue
    check_url: Callable[[str], str]  # the URL guard; raises CallbackRefused
    sender: Sender  # for test events, bounded by the receiver timeout
    max_endpoints: int
    replay_rate: float
    secret_overlap_s: float
    test_interval_s: float = TEST_EVENT_INTERVAL_S
    clock: Callable[[], float] = time.time

    def create(
        self, tenant: str, url: str, filter: EndpointFilter, description: str | None  # noqa: A002
    ) -> tuple[Endpoint, str]:
        """The new endpoint and its secret (shown this once)."""
        check_description(description)
        self.check_url(url)
        if len(self.endpoints.list(tenant)) >= self.max_endpoints:
            raise EndpointLimit(f"a tenant has at most {self.max_endpoints} webhook endpoints")
        endpoint = Endpoint(
            id=new_endpoint_id(), tenant=tenant, url=url, filter=filter, description=description, created_at=now_iso()
        )
        secret = new_secret()
        # The secret first: an endpoint is never visible (to the stream consumer) without one.
        self.secrets.put(endpoint.id, [SigningSecret(secret)])
        self.endpoints.create(endpoint)
        return endpoint, secret

    def update(
        self,
        tenant: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        filter: EndpointFilter | None = None,  # noqa: A002
        description: str | None = None,
        clear_description: bool = False,
        enabled: bool | None = None,
    ) -> Endpoint | None:
        check_description(description)
        if url is not None:
            self.check_url(url)
        return self.endpoints.update(
            tenant, endpoint_id, url=url, filter=filter, description=description,
            clear_description=clear_description, enabled=enabled,
        )

    def delete(self, tenant: str, endpoint_id: str) -> bool:
        if not self.endpoints.delete(tenant, endpoint_id):
            return False
        self.secrets.delete(endpoint_id)
        return True

    def rotate_secret(self, tenant: str, endpoint_id: str) -> str | None:
        """A new secret; the previous one keeps signing for ``secret_overlap_s`` (receivers switch over)."""
        if self.endpoints.get(tenant, endpoint_id) is None:
            return None
        secret = new_secret()
        current = self.secrets.get(endpoint_id)
        self.secrets.put(endpoint_id, rotated(current, secret, self.clock(), self.secret_overlap_s))
        return secret

    def deliveries(self, tenant: str, endpoint_id: str, limit: int, cursor: str | None) -> DeliveryPage | None:
        if self.endpoints.get(tenant, endpoint_id) is None:
            return None
        return self.log.page(endpoint_id, limit, cursor)

    def replay(self, tenant: str, endpoint_id: str, since_s: float, only_failed: bool) -> int | None:
        """Queue each webhook logged since ``since_s`` (or each whose last outcome was a failure) again:
        a new attempt with the same webhook-id, paced at ``replay_rate`` a second per endpoint (after the
        replays already queued for it); how many were queued."""
        endpoint = self._enabled(tenant, endpoint_id)
        if endpoint is None:
            return None
        logged = self.log.since(endpoint_id, since_s, REPLAY_READ_LIMIT)
        chosen = {d.delivery_id for d in to_replay((d.logged() for d in reversed(logged)), only_failed)}
        jobs = [d.job for d in logged if d.delivery_id in chosen]
        if not jobs:
            return 0
        start = self._book(tenant, endpoint, len(jobs))
        if start is None:
            return None
        times = paced(len(jobs), self.replay_rate, start)
        self.queue.enqueue_many([_again(job, at) for job, at in zip(jobs, times, strict=True)], now=self.clock())
        return len(jobs)

    def _book(self, tenant: str, endpoint: Endpoint, count: int) -> float | None:
        """Book ``count`` replayed deliveries after those already queued for the endpoint (its pace is shared
        by replays and resends); when the first may go. None: the endpoint is gone; ``TooSoon`` when its
        backlog is full; ``ReplayBusy`` when other bookings keep winning."""
        for _ in range(BOOKING_ATTEMPTS):
            now = self.clock()
            wait = backlog_wait(endpoint.replay_busy_until, now, count, self.replay_rate)
            if wait > 0:
                raise TooSoon(
                    f"{MAX_REPLAY_BACKLOG} replayed or resent deliveries at most may wait for one endpoint; "
                    f"try again in {math.ceil(wait)} s",
                    wait,
                )
            start, until = replay_window(endpoint.replay_busy_until, now, count, self.replay_rate)
            if self.endpoints.book_replay(endpoint, until):
                return start
            found = self._enabled(tenant, endpoint.id)
            if found is None:
                return None
            endpoint = found
        raise ReplayBusy("other replays of this endpoint are being queued; try again")

    def resend(self, tenant: str, endpoint_id: str, delivery_id: str) -> bool | None:
        """Queue one logged delivery again; None: no such endpoint, False: no such delivery."""
        endpoint = self._enabled(tenant, endpoint_id)
        if endpoint is None:
            return None
        delivery = self.log.get(endpoint_id, delivery_id)
        if delivery is None:
            return False
        start = self._book(tenant, endpoint, 1)  # paced with the replays: a resend storm is not a flood
        if start is None:
            return None
        self.queue.enqueue(_again(delivery.job, start), now=self.clock())
        return True

    def test(self, tenant: str, endpoint_id: str) -> TestOutcome | None:
        """One signed ``webhook.test`` message, sent now (through the URL guard), and what the receiver said."""
        endpoint = self.endpoints.get(tenant, endpoint_id)
        if endpoint is None:
            return None
        now = self.clock()
        # At most one per interval and endpoint: the test event calls out at once, while the request waits.
        wait = wait_for_test_event(endpoint.last_test_at, now, self.test_interval_s)
        if wait > 0 or not self.endpoints.book_test_event(endpoint, now):
            raise TooSoon(
                f"one test event per endpoint every {self.test_interval_s:g} s at most; "
                f"try again in {math.ceil(max(wait, 1.0))} s",
                max(wait, 1.0),
            )
        body = json.dumps(
            {
                "type": TEST_EVENT,
                "timestamp": iso_time(now),
                "data": {"endpoint_id": endpoint.id, "message": "a test event from taskcast"},
            },
            separators=(",", ":"),
        )
        message_id = f"{endpoint.id}.test.{secrets.token_hex(8)}"
        keys = signing_secrets(self.secrets.get(endpoint.id), now)
        if not keys:
            return TestOutcome(None, "failed", "the endpoint has no signing secret")
        result = self.sender.send(endpoint.url, body, signed_headers(keys, message_id, body))
        code = result.status_code
        delivered = code is not None and 200 <= code < 300
        return TestOutcome(code, "delivered" if delivered else "failed", result.error)

    def _enabled(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        endpoint = self.endpoints.get(tenant, endpoint_id)
        if endpoint is not None and not endpoint.enabled:
            raise EndpointDisabled("the endpoint is disabled; enable it (PATCH enabled: true) first")
        return endpoint


def _again(job: WebhookJob, not_before: float) -> WebhookJob:
    """A new delivery of the same webhook (same id and body): a fresh retry schedule, not a stream copy."""
    return dataclasses.replace(job, attempt=1, not_before=not_before, from_stream=False, deferrals=0)
