"""Registered webhook endpoints as plain data and pure decisions.

An endpoint belongs to one tenant: a URL, a filter over task changes, enabled or not, and its own
signing secrets (kept apart, ``taskcast.endpoint_store.EndpointSecrets``). Everything here is free of
I/O: which changes an endpoint gets, when a failing endpoint is switched off, how a replay is paced,
and the opaque paging cursor of its delivery log.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskcast.models import Status

# Limits (docs/operations.md, "Webhook endpoints").
MAX_ENDPOINTS_PER_TENANT = 20
MAX_DESCRIPTION_LENGTH = 500
MAX_FILTER_TYPES = 50
MAX_TYPE_LENGTH = 64
MAX_REPLAY = 1000  # (task, version) pairs one replay call re-sends at most
MAX_REPLAY_BACKLOG = 2 * MAX_REPLAY  # replayed or resent deliveries queued ahead for one endpoint, at most
TEST_EVENT_INTERVAL_S = 5.0  # one test event per endpoint this often, at most
MAX_PAGE = 100
DEFAULT_PAGE = 20

STATUSES = tuple(str(status) for status in Status)
ENDPOINT_ID_PREFIX = "ep_"
_ENDPOINT_ID = re.compile(r"^ep_[a-z0-9]{20}$")
_DELIVERY_ID = re.compile(r"^[0-9]{13}[a-z0-9]{8}$")

DISABLED_GONE = "the receiver answered 410 Gone"
DISABLED_FAILING = "every delivery failed for {duration}"


class InvalidEndpoint(ValueError):
    """A request's endpoint fields break a rule; the message says which, for a 400 problem."""


@dataclass(frozen=True)
class EndpointFilter:
    """Which changes an endpoint gets: every one when a list is empty, else those listed (both must match)."""

    statuses: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    def matches(self, status: str, task_type: str) -> bool:
        return (not self.statuses or status in self.statuses) and (not self.types or task_type in self.types)

    def as_json(self) -> dict[str, list[str]]:
        shown: dict[str, list[str]] = {}
        if self.statuses:
            shown["statuses"] = list(self.statuses)
        if self.types:
            shown["types"] = list(self.types)
        return shown

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> EndpointFilter:
        """Stored filters are trusted (validated on the way in)."""
        data = data or {}
        return cls(tuple(data.get("statuses") or ()), tuple(data.get("types") or ()))


def parse_filter(statuses: Sequence[str] | None, types: Sequence[str] | None) -> EndpointFilter:
    """A request's filter, checked: known statuses, short type names, no empty lists (match nothing is a
    mistake, not a setting: disable the endpoint instead)."""
    if statuses is not None:
        if not statuses:
            raise InvalidEndpoint("filter.statuses must list at least one status, or be left out for all")
        unknown = sorted(set(statuses) - set(STATUSES))
        if unknown:
            raise InvalidEndpoint(f"filter.statuses: unknown {unknown}; use {list(STATUSES)}")
    if types is not None:
        if not types:
            raise InvalidEndpoint("filter.types must list at least one type, or be left out for all")
        if len(types) > MAX_FILTER_TYPES:
            raise InvalidEndpoint(f"filter.types lists at most {MAX_FILTER_TYPES} types")
        if any(not isinstance(name, str) or not 1 <= len(name) <= MAX_TYPE_LENGTH for name in types):
            raise InvalidEndpoint(f"filter.types are names of 1 to {MAX_TYPE_LENGTH} characters")
    return EndpointFilter(_unique(statuses or ()), _unique(types or ()))


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Endpoint:
    id: str
    tenant: str
    url: str
    filter: EndpointFilter = field(default_factory=EndpointFilter)
    enabled: bool = True
    description: str | None = None
    created_at: str = ""
    updated_at: str = ""
    disabled_reason: str | None = None
    disabled_at: str | None = None
    failing_since: float | None = None  # epoch seconds of the first failure since the last success
    replay_busy_until: float | None = None  # epoch seconds when the replays queued so far are all due
    last_test_at: float | None = None  # epoch seconds of the last test event sent

    def as_json(self) -> dict[str, Any]:
        """The public shape (never a secret)."""
        shown: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "filter": self.filter.as_json(),
            "enabled": self.enabled,
            "description": self.description,
            "created_at": self.created_at,
            "updated_at": self.updated_at or self.created_at,
        }
        if not self.enabled:
            shown["disabled_reason"] = self.disabled_reason
            shown["disabled_at"] = self.disabled_at
        return shown

    def wants(self, status: str, task_type: str) -> bool:
        return self.enabled and self.filter.matches(status, task_type)


def new_endpoint_id() -> str:
    return ENDPOINT_ID_PREFIX + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(20))


def is_endpoint_id(text: str) -> bool:
    return bool(_ENDPOINT_ID.match(text))


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_description(text: str | None) -> str | None:
    if text is not None and len(text) > MAX_DESCRIPTION_LENGTH:
        raise InvalidEndpoint(f"description is at most {MAX_DESCRIPTION_LENGTH} characters")
    return text


# --- secrets during a rotation ----------------------------------------------------------------------


@dataclass(frozen=True)
class SigningSecret:
    secret: str
    until: float = 0.0  # epoch seconds after which it no longer signs; 0: the current one

    def live(self, now: float) -> bool:
        return self.until == 0.0 or now < self.until


def rotated(current: Sequence[SigningSecret], new: str, now: float, overlap_s: float) -> list[SigningSecret]:
    """The new secret first, then the one it replaces, signing until the overlap ends (older ones dropped)."""
    kept = [SigningSecret(s.secret, s.until if s.until else now + overlap_s) for s in current if s.live(now)]
    return [SigningSecret(new), *kept[:1]]


def signing_secrets(stored: Sequence[SigningSecret], now: float) -> list[str]:
    return [s.secret for s in stored if s.live(now)]


# --- auto-disable -----------------------------------------------------------------------------------


def should_disable(failing_since: float | None, now: float, disable_after_s: float) -> bool:
    """An endpoint whose deliveries have all failed since ``failing_since`` for ``disable_after_s`` is off."""
    return failing_since is not None and now - failing_since >= disable_after_s


def failing_reason(disable_after_s: float) -> str:
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if disable_after_s >= seconds or unit == "second":
            count = disable_after_s / seconds
            return DISABLED_FAILING.format(duration=f"{count:g} {unit}{'' if count == 1 else 's'}")
    raise AssertionError("unreachable")


# --- replay -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedDelivery:
    """One entry of an endpoint's delivery log, as replay sees it."""

    delivery_id: str
    webhook_id: str
    outcome: str


REPLAYABLE_FAILURES = frozenset({"failed", "disabled"})


def to_replay(entries_newest_first: Iterable[LoggedDelivery], only_failed: bool) -> list[LoggedDelivery]:
    """One entry per webhook (its newest), oldest first; with ``only_failed``, those whose newest outcome
    is a failure (given up on, or not sent because the endpoint was disabled). A webhook still being
    retried is left to its retries."""
    newest: dict[str, LoggedDelivery] = {}
    for entry in entries_newest_first:
        newest.setdefault(entry.webhook_id, entry)
    chosen = [e for e in newest.values() if not only_failed or e.outcome in REPLAYABLE_FAILURES]
    return list(reversed(chosen))[:MAX_REPLAY]


def paced(count: int, rate_per_s: float, start: float) -> list[float]:
    """``not_before`` of each of ``count`` replayed deliveries: at most ``rate_per_s`` a second from ``start``,
    so that a receiver coming back is not flooded."""
    rate = max(rate_per_s, 0.001)
    return [start + index / rate for index in range(count)]


def replay_window(busy_until: float | None, now: float, count: int, rate_per_s: float) -> tuple[float, float]:
    """When a replay of ``count`` deliveries starts and when the endpoint's replays are done: after the
    ones already queued (``busy_until``), so that replays called one after another share the rate."""
    start = max(now, busy_until or 0.0)
    return start, start + count / max(rate_per_s, 0.001)


def backlog_wait(busy_until: float | None, now: float, count: int, rate_per_s: float) -> float:
    """0 when ``count`` more replayed deliveries fit in the endpoint's backlog (``MAX_REPLAY_BACKLOG``
    queued ahead at most), else the seconds until enough of the queued ones are due that they would."""
    rate = max(rate_per_s, 0.001)
    ahead = max(0.0, (busy_until or 0.0) - now) * rate
    excess = ahead + count - MAX_REPLAY_BACKLOG
    return 0.0 if excess <= 0 else excess / rate


def wait_for_test_event(last_test_at: float | None, now: float, interval_s: float) -> float:
    """0 when a test event may be sent now, else the seconds until one may (one per ``interval_s``)."""
    if last_test_at is None:
        return 0.0
    return max(0.0, last_test_at + interval_s - now)


# --- delivery ids and the paging cursor -------------------------------------------------------------


def new_delivery_id(epoch_s: float) -> str:
    """Sorts by time (milliseconds), then 8 random characters: the log's sort key and the resend handle."""
    suffix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
    return f"{int(epoch_s * 1000):013d}{suffix}"


def is_delivery_id(text: str) -> bool:
    return bool(_DELIVERY_ID.match(text))


def since_key(epoch_s: float) -> str:
    """The smallest delivery id at or after ``epoch_s``."""
    return f"{int(epoch_s * 1000):013d}"


def encode_cursor(last_delivery_id: str) -> str:
    return base64.urlsafe_b64encode(f"d1:{last_delivery_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The delivery id a page ended at; ``InvalidEndpoint`` for anything not made by ``encode_cursor``."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidEndpoint("cursor is not one this API gave out") from None
    version, _, delivery_id = text.partition(":")
    if version != "d1" or not is_delivery_id(delivery_id):
        raise InvalidEndpoint("cursor is not one this API gave out")
    return delivery_id


def page_size(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidEndpoint(f"limit is from 1 to {MAX_PAGE}")
    return limit

