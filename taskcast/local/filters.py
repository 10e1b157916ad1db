"""Lambda event filtering (``FilterCriteria``): EventBridge-style patterns matched against records.

Supported: nested objects, lists of allowed values (strings, numbers, booleans, null), ``prefix``,
``suffix``, ``equals-ignore-case``, ``anything-but`` (a value, a list or a ``prefix``), ``exists`` and
``numeric`` comparisons. A record passes when any filter matches; for SQS, a JSON body is matched as
an object under ``body``.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Any

_MISSING = object()
_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


class FilterError(ValueError):
    """A pattern the local matcher does not understand."""


def parse_filters(filter_criteria: dict[str, Any] | None) -> list[dict[str, Any]]:
    """``FilterCriteria`` → the list of patterns (each ``Pattern`` is a JSON string)."""
    patterns = []
    for entry in (filter_criteria or {}).get("Filters") or []:
        pattern = entry.get("Pattern")
        patterns.append(json.loads(pattern) if isinstance(pattern, str) else pattern)
    return patterns


def record_passes(patterns: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    return not patterns or any(matches(pattern, record) for pattern in patterns)


def sqs_view(record: dict[str, Any]) -> dict[str, Any]:
    """What an SQS filter sees: the record with its body parsed when it is a JSON object."""
    try:
        body = json.loads(record.get("body", ""))
    except ValueError:
        return record
    return {**record, "body": body} if isinstance(body, dict) else record


def matches(pattern: dict[str, Any], event: Any) -> bool:
    if not isinstance(pattern, dict):
        raise FilterError("a pattern is a JSON object")
    for key, expected in pattern.items():
        value = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(expected, dict):
            if value is _MISSING or not matches(expected, value):
                return False
        elif isinstance(expected, list):
            if not _matches_any(expected, value):
                return False
        else:
            raise FilterError(f"pattern values are objects or lists, not {expected!r} (at {key!r})")
    return True


def _matches_any(rules: list[Any], value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(_rule_matches(rule, item) for rule in rules for item in values)


def _rule_matches(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        if value is _MISSING:
            return False
        if _is_number(rule) and _is_number(value):
            return float(rule) == float(value)
        return value == rule and type(value) is type(rule)
    if len(rule) != 1:
        raise FilterError(f"one operator per rule: {rule!r}")
    (name, argument), = rule.items()
    if name == "exists":
        return (value is not _MISSING) == bool(argument)
    if value is _MISSING:
        return False
    if name == "prefix":
        return isinstance(value, str) and value.startswith(argument)
    if name == "suffix":
        return isinstance(value, str) and value.endswith(argument)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(argument).lower()
    if name == "anything-but":
        if isinstance(argument, dict):
            return not _rule_matches(argument, value)
        excluded = argument if isinstance(argument, list) else [argument]
        return value not in excluded
    if name == "numeric":
        if not _is_number(value):
            return False
        pairs = list(zip(argument[::2], argument[1::2], strict=False))
        return all(_NUMERIC[op](value, float(limit)) for op, limit in pairs)
    raise FilterError(f"unsupported filter operator {name!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
