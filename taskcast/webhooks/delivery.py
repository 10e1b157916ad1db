"""Sending signed webhooks: one attempt at a time, each logged, failures handed to the retry queue.

SSRF is guarded twice on every attempt: ``check_callback_url`` runs again (DNS may have changed since
the task was created), and the HTTP session comes from requests-hardened with its IP filter on, which
checks the address actually connected to and pins the connection to it. Redirects are never followed.

The callback URL check (below the sender) is pure decisions over a URL and the addresses it resolves
to. The same address rules guard both moments: when a task is created (every resolved address must be
public) and at every delivery, where the session checks the address it actually connects to. The extra
ranges come from requests-hardened so both layers agree.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import requests
from requests_hardened import Config, Manager
from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES, InvalidIPAddress

from taskcast.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_DEAD_LETTERED, MetricsSink, default_metrics
from taskcast.models import Task, now_iso, status_message
from taskcast.store import DeliveryAttempt, DeliveryLog, Markers
from taskcast.tenants import Tenant
from taskcast.webhooks.deadline import DeadlineExceeded, run_with_deadline, watch_connections
from taskcast.webhooks.endpoint_attempts import EndpointAttempts
from taskcast.webhooks.endpoints import Endpoint
from taskcast.webhooks.format import (
    AttemptResult,
    Decision,
    WebhookJob,
    decide,
    parse_retry_after,
    signed_headers,
    webhook_body,
)
from taskcast.webhooks.retry_queue import RetryQueue

logger = logging.getLogger(__name__)

# --- the callback URL guard (SSRF) ----------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
HostLookup = Callable[[str, int], Iterable[str]]

MAX_URL_LENGTH = 2048


class CallbackRefused(ValueError):
    """The callback URL may not be used; the message says why, for a 400 problem's detail."""


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in ipaddress.ip_network("64:ff9b::/96") or ip in ipaddress.ip_network("64:ff9b:1::/48"):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(ip: IPAddress, allow_loopback: bool = False) -> str | None:
    """Why ``ip`` may not be called back, or None when it is a public address (or allowed loopback)."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        # Judge the IPv4 address it carries, and never let a translated form pass as loopback.
        reason = address_refusal(embedded, allow_loopback=False)
        return f"{ip} embeds {embedded}: {reason}" if reason else f"{ip} is an IPv4-translated address"
    if ip.is_loopback:
        return None if allow_loopback else f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address (cloud metadata lives there)"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if any(ip in network for network in EXTRA_BLOCKED_NET_RANGES if network.version == ip.version):
        return f"{ip} is in a reserved or translated range"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return f"{ip} is a private or reserved address"
    return None


def system_lookup(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def check_callback_url(
    url: str,
    *,
    allow_loopback: bool = False,
    resolve: HostLookup = system_lookup,
) -> str:
    """Return ``url`` if it may be used as a callback; raise ``CallbackRefused`` saying why not.

    Rules: ``https`` only (``http`` only to loopback when ``allow_loopback``), no credentials, and
    every address the host resolves to must be public (``localhost``, ``127.1``, ``2130706433``,
    ``0x7f.1`` and the like resolve to loopback and are judged as such).
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise CallbackRefused(f"callback_url must be a URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise CallbackRefused(f"callback_url is not a valid URL: {error}") from None
    if parts.scheme not in {"https", "http"}:
        raise CallbackRefused("callback_url must use https")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url must not carry credentials")
    host = parts.hostname
    if not host:
        raise CallbackRefused("callback_url has no host")
    if parts.fragment:
        raise CallbackRefused("callback_url must not have a fragment")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(address.split("%", 1)[0]) for address in resolve(host, port)]
    except (OSError, UnicodeError) as error:
        raise CallbackRefused(f"callback_url host {host!r} does not resolve ({error})") from None
    if not addresses:
        raise CallbackRefused(f"callback_url host {host!r} does not resolve")
    for ip in addresses:
        reason = address_refusal(ip, allow_loopback=allow_loopback)
        if reason:
            raise CallbackRefused(f"callback_url host {host!r} resolves to a refused address: {reason}")
    if parts.scheme == "http" and not (allow_loopback and all(ip.is_loopback for ip in addresses)):
        raise CallbackRefused("callback_url must use https (plain http is allowed only to loopback locally)")
    return url


# --- sending ---------------------------------------------------------------------------------------

DISABLED_REASON = "callback disabled: a receiver answered 410 Gone"


class TenantLookup(Protocol):
    def get(self, name: str) -> Tenant | None: ...


class WebhookSender:
    """Posts one signed payload to a callback URL and reports what happened; never raises for the network.

    Every attempt has a hard total deadline, ``timeout_s``, for connect + TLS + send + the response's
    status and headers (the body is never read), enforced by ``run_with_deadline``; the socket timeouts
    are only a backstop. DNS resolution is inside the deadline too.
    """

    def __init__(
        self,
        *,
        timeout_s: float,
        allow_loopback: bool,
        resolve: HostLookup = system_lookup,
    ) -> None:
        self.timeout_s = timeout_s
        self.allow_loopback = allow_loopback
        self._resolve = resolve
        self._manager = Manager(
            Config(
                ip_filter_enable=True,
                ip_filter_allow_loopback_ips=allow_loopback,
                never_redirect=True,
                default_timeout=(timeout_s, timeout_s),
            )
        )

    def send(self, url: str, payload: str, headers: dict[str, str]) -> AttemptResult:
        try:
            return run_with_deadline(lambda: self._send(url, payload, headers), self.timeout_s)
        except DeadlineExceeded:
            return AttemptResult(error=f"timeout: no answer within {self.timeout_s:g} s", unreachable=True)

    def _send(self, url: str, payload: str, headers: dict[str, str]) -> AttemptResult:
        try:
            check_callback_url(url, allow_loopback=self.allow_loopback, resolve=self._resolve)
        except CallbackRefused as refusal:
            return AttemptResult(error=f"refused: {refusal}")
        # A session per attempt: every connection is new, so the watch sees (and can abort) its socket.
        with watch_connections(self._manager.get_session()) as session:
            try:
                response = session.post(
                    url,
                    data=payload.encode(),
                    headers=headers,
                    timeout=(self.timeout_s, self.timeout_s),
                    allow_redirects=False,
                    stream=True,  # the receiver's body is never read
                )
            except InvalidIPAddress as refusal:
                return AttemptResult(error=f"refused: the address connected to is not public ({refusal})")
            except requests.Timeout:
                return AttemptResult(error=f"timeout: no answer within {self.timeout_s:g} s", unreachable=True)
            except requests.RequestException as error:
                return AttemptResult(error=f"connection error: {type(error).__name__}", unreachable=True)
            with response:
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            location = response.headers.get("Location", "?")
        redirect = f"redirect to {shown_location(location)} not followed" if 300 <= status < 400 else None
        return AttemptResult(status_code=status, error=redirect, retry_after_s=retry_after)


MAX_SHOWN_LOCATION = 200  # characters of a receiver's Location kept in a delivery's error


def shown_location(location: str) -> str:
    """A receiver's ``Location`` as a delivery log may keep it: quoted (control characters escaped) and cut
    to ``MAX_SHOWN_LOCATION`` characters; the receiver's own text goes no further than that."""
    if len(location) <= MAX_SHOWN_LOCATION:
        return repr(location)
    return repr(location[:MAX_SHOWN_LOCATION]) + f" (cut, {len(location)} characters)"


def job_for(task: Task) -> WebhookJob | None:
    """The first attempt's job for a task change, or None when the task has no callback."""
    if not task.callback_url:
        return None
    return WebhookJob(
        task_id=task.id,
        tenant=task.tenant,
        version=task.version,
        callback_url=task.callback_url,
        payload=webhook_body(status_message(task)),
        expires_at=task.expires_at,
        from_stream=True,
    )


def endpoint_jobs(task: Task, endpoints: Iterable[Endpoint]) -> list[WebhookJob]:
    """The first attempts' jobs for a task change: one per endpoint of the task's tenant whose filter
    matches it. The body is the callback's; the URL and secrets are read at attempt time."""
    matching = [e for e in endpoints if e.tenant == task.tenant and e.filter.matches(str(task.status), task.type)]
    if not matching:
        return []
    payload = webhook_body(status_message(task))
    return [
        WebhookJob(
            task_id=task.id,
            tenant=task.tenant,
            version=task.version,
            callback_url=endpoint.url,
            payload=payload,
            expires_at=task.expires_at,
            from_stream=True,
            endpoint_id=endpoint.id,
        )
        for endpoint in matching
    ]


@dataclass(frozen=True)
class AttemptReport:
    decision: Decision
    result: AttemptResult
    sent: bool  # the receiver was called (False: no secret to sign with)

    @property
    def outcome(self) -> str:
        return self.decision.outcome


class WebhookDelivery:
    def __init__(
        self,
        *,
        sender: WebhookSender,
        tenants: TenantLookup,
        markers: Markers,
        log: DeliveryLog,
        queue: RetryQueue,
        schedule: Sequence[float],
        clock: Callable[[], float] = time.time,
        metrics: MetricsSink | None = None,
        endpoints: EndpointAttempts | None = None,
    ) -> None:
        self.sender = sender
        self.endpoints = endpoints  # registered endpoints' jobs (``endpoint_id`` set)
        self.tenants = tenants
        self.markers = markers
        self.log = log
        self.queue = queue
        self.schedule = tuple(schedule)
        self._clock = clock
        self.metrics = metrics if metrics is not None else default_metrics()

    def settled(self, job: WebhookJob) -> str | None:
        """Why ``job`` needs no attempt ("duplicate", "disabled"), or None when it is to be sent.

        A first attempt handed off by the stream consumer and already in the delivery log (a replayed
        stream record, a message SQS delivered twice) is dropped; a job for a disabled callback is logged
        as such and ends.
        """
        if job.endpoint_id:
            return self._endpoints().settled(job)
        if job.from_stream:
            disabled, logged = self.markers.webhook_state(job.task_id, job.version)
            if logged:
                return "duplicate"
        else:
            disabled = self.markers.callback_disabled(job.task_id)
        if disabled:
            self._record(job, AttemptResult(error=DISABLED_REASON), Decision("disabled"))
            return "disabled"
        return None

    def attempt(self, job: WebhookJob) -> AttemptReport:
        """Send ``job`` once, then act on the outcome: schedule the next attempt, dead-letter, or disable.

        The log is written last, so a crash before it means the attempt is made again (at least once).
        """
        if job.endpoint_id:
            report = self._endpoints().attempt(job, self.sender)
            return AttemptReport(report.decision, report.result, report.sent)
        tenant = self.tenants.get(job.tenant)
        sent = tenant is not None and bool(tenant.webhook_secrets)
        if tenant is None or not tenant.webhook_secrets:
            result = AttemptResult(error="no webhook secret configured for the tenant")
            decision = Decision("failed")
        else:
            headers = signed_headers(tenant.webhook_secrets, job.webhook_id, job.payload)
            result = self.sender.send(job.callback_url, job.payload, headers)
            decision = decide(result, job.attempt, self.schedule)
        if decision.outcome == "retrying":
            self.queue.enqueue(job.next_attempt(decision.delay_s or 0.0, self._clock()), now=self._clock())
        elif decision.outcome == "failed":
            self.queue.dead_letter(job, result.error or f"HTTP {result.status_code}")
            self.metrics.count(WEBHOOK_DEAD_LETTERED)
        elif decision.outcome == "disabled" and result.status_code == 410:
            self.markers.disable_callback(job.task_id, DISABLED_REASON, job.expires_at)
        self._record(job, result, decision)
        logger.info(
            "webhook attempt",
            extra={
                "webhook_id": job.webhook_id,
                "attempt": job.attempt,
                "status_code": result.status_code,
                "outcome": decision.outcome,
            },
        )
        return AttemptReport(decision, result, sent)

    def _endpoints(self) -> EndpointAttempts:
        if self.endpoints is None:
            raise RuntimeError("a registered endpoint's job reached a delivery without the endpoint store")
        return self.endpoints

    def _record(self, job: WebhookJob, result: AttemptResult, decision: Decision) -> None:
        entry = DeliveryAttempt(
            webhook_id=job.webhook_id,
            version=job.version,
            attempt=job.attempt,
            status_code=result.status_code,
            at=now_iso(),
            outcome=decision.outcome,
            error=result.error,
        )
        self.log.record(job.task_id, job.tenant, job.expires_at, entry)
        # One per delivery-log entry, so the metric and GET /tasks/{id}/deliveries agree.
        self.metrics.count(WEBHOOK_ATTEMPTS, Outcome=decision.outcome)

