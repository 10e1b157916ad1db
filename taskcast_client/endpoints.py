"""``client.endpoints``: the tenant's registered webhook endpoints (``/webhook-endpoints``).

Every call answers the API's JSON as plain dicts and raises ``TaskcastError`` with the problem on a
refusal (404 for an unknown endpoint or another tenant's, 400 for a refused URL or bad filter, 409 at
the endpoint limit or when replaying to a disabled endpoint). The secret comes back from ``create`` and
``rotate_secret`` only: keep it where the receiver verifies (``taskcast_client.verify_webhook``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

if TYPE_CHECKING:
    from taskcast_client.client import TaskcastClient

_UNSET: Any = object()


def _filter(statuses: Sequence[str] | None, types: Sequence[str] | None) -> dict[str, list[str]]:
    chosen: dict[str, list[str]] = {}
    if statuses:
        chosen["statuses"] = list(statuses)
    if types:
        chosen["types"] = list(types)
    return chosen


class Endpoints:
    def __init__(self, client: TaskcastClient) -> None:
        self.client = client

    @staticmethod
    def _path(endpoint_id: str = "", suffix: str = "") -> str:
        return "/webhook-endpoints" + (f"/{quote(endpoint_id, safe='')}" if endpoint_id else "") + suffix

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, **kwargs).json()

    def create(
        self,
        url: str,
        *,
        statuses: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Register ``url``; the answer carries ``secret`` (shown this once)."""
        body: dict[str, Any] = {"url": url}
        if statuses or types:
            body["filter"] = _filter(statuses, types)
        if description is not None:
            body["description"] = description
        return cast(dict[str, Any], self._json("POST", self._path(), json=body))

    def list(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._json("GET", self._path()))

    def get(self, endpoint_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("GET", self._path(endpoint_id)))

    def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        statuses: Sequence[str] | None = _UNSET,
        types: Sequence[str] | None = _UNSET,
        description: str | None = _UNSET,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change only what is given; passing ``statuses`` or ``types`` replaces the whole filter (None: all)."""
        body: dict[str, Any] = {}
        if url is not None:
            body["url"] = url
        if statuses is not _UNSET or types is not _UNSET:
            body["filter"] = _filter(None if statuses is _UNSET else statuses, None if types is _UNSET else types)
        if description is not _UNSET:
            body["description"] = description
        if enabled is not None:
            body["enabled"] = enabled
        return cast(dict[str, Any], self._json("PATCH", self._path(endpoint_id), json=body))

    def enable(self, endpoint_id: str) -> dict[str, Any]:
        return self.update(endpoint_id, enabled=True)

    def disable(self, endpoint_id: str) -> dict[str, Any]:
        return self.update(endpoint_id, enabled=False)

    def delete(self, endpoint_id: str) -> None:
        self.client.request("DELETE", self._path(endpoint_id))

    def rotate_secret(self, endpoint_id: str) -> str:
        """A new secret; the previous one keeps signing beside it for the overlap."""
        return str(self._json("POST", self._path(endpoint_id, "/rotate-secret"))["secret"])

    def deliveries(self, endpoint_id: str, *, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """One page, newest first: ``{"items": [...], "next": cursor or None}``."""
        params: dict[str, Any] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        return cast(dict[str, Any], self._json("GET", self._path(endpoint_id, "/deliveries"), params=params))

    def all_deliveries(self, endpoint_id: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every logged attempt, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = self.deliveries(endpoint_id, limit=page_size, cursor=cursor)
            yield from page["items"]
            cursor = page.get("next")
            if not cursor:
                return

    def replay(self, endpoint_id: str, since: datetime | str, *, only_failed: bool = False) -> int:
        """Send again what was logged since ``since`` (or only what failed); how many were queued."""
        moment = since.isoformat() if isinstance(since, datetime) else since
        body = {"since": moment, "only_failed": only_failed}
        return int(self._json("POST", self._path(endpoint_id, "/replay"), json=body)["queued"])

    def resend(self, endpoint_id: str, delivery_id: str) -> None:
        self.client.request("POST", self._path(endpoint_id, f"/deliveries/{quote(delivery_id, safe='')}/resend"))

    def test(self, endpoint_id: str) -> dict[str, Any]:
        """Send a signed ``webhook.test`` now: ``{"status_code", "outcome"}`` (``failed`` when unreachable)."""
        return cast(dict[str, Any], self._json("POST", self._path(endpoint_id, "/test")))
