"""HTTP header lookup whatever the case of the name (API Gateway keeps the client's casing)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Headers = Mapping[str, Any] | Iterable[tuple[str, Any]] | None


def header(headers: Headers, name: str) -> Any:
    """The first value of header ``name``, from a mapping or from (name, value) pairs; None when absent."""
    wanted = name.lower()
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    return next((value for key, value in pairs if key.lower() == wanted and value is not None), None)
