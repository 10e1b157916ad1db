"""Which methods each path accepts, so an existing path with the wrong method answers 405, not 404."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

_PARAMETER = re.compile(r"<\w+>")


def rule_pattern(rule: str) -> re.Pattern[str]:
    """``/tasks/<id>/result`` → a regex matching one path segment per parameter."""
    parts = _PARAMETER.split(rule)
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in parts) + "$")


class RouteTable:
    """Registers routes on the resolver and remembers them (Powertools keeps its table private)."""

    def __init__(self, app: APIGatewayRestResolver) -> None:
        self.app = app
        self._rules: dict[str, tuple[re.Pattern[str], set[str]]] = {}

    def route(self, rule: str, method: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        pattern, methods = self._rules.setdefault(rule, (rule_pattern(rule), set()))
        methods.add(method.upper())
        return self.app.route(rule, method=method.upper(), **options)

    def allowed_methods(self, path: str) -> list[str]:
        allowed: set[str] = set()
        for pattern, methods in self._rules.values():
            if pattern.match(path):
                allowed |= methods
        return sorted(allowed)
