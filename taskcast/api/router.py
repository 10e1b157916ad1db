"""A REST resolver that can serve several requests at once in one process.

Powertools keeps the request being resolved (``current_event``, ``lambda_context``, the routing
``context``) in attributes shared by every thread: fine in Lambda, where an execution environment
runs one event at a time, but the local stack runs a function's requests on threads of one process.
This resolver keeps that state per request in a ``ContextVar`` — the pattern Powertools' own
``HttpResolver`` uses — so requests resolve concurrently without seeing each other's event.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent


@dataclass
class ResolutionState:
    """What Powertools reads and writes while resolving one request."""

    event: BaseProxyEvent | None = None
    lambda_context: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    processed_stack_frames: list[str] = field(default_factory=list)


class ConcurrentRestRouter(APIGatewayRestResolver):
    """``APIGatewayRestResolver`` whose per-request state lives in a ``ContextVar`` (one per thread)."""

    def __init__(self, **options: Any) -> None:
        # Set before Powertools' __init__, which assigns `context` and `processed_stack_frames`.
        self._outside_requests = ResolutionState()
        self._request_state: ContextVar[ResolutionState | None] = ContextVar(
            f"taskcast_rest_request_{id(self)}", default=None
        )
        super().__init__(**options)

    @property
    def _state(self) -> ResolutionState:
        return self._request_state.get() or self._outside_requests

    # Powertools declares these as plain attributes; the properties send each request to its own state.
    @property  # type: ignore[override]
    def current_event(self) -> BaseProxyEvent:
        event = self._state.event
        if event is None:
            raise RuntimeError("current_event is only available while a request is being resolved")
        return event

    @current_event.setter
    def current_event(self, value: BaseProxyEvent) -> None:
        self._state.event = value

    @property
    def lambda_context(self) -> Any:
        return self._state.lambda_context

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._state.lambda_context = value

    @property
    def context(self) -> dict[str, Any]:
        return self._state.context

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        self._state.context = value

    @property
    def processed_stack_frames(self) -> list[str]:
        return self._state.processed_stack_frames

    @processed_stack_frames.setter
    def processed_stack_frames(self, value: list[str]) -> None:
        self._state.processed_stack_frames = value

    def resolve_request(self, event: dict[str, Any], lambda_context: Any, **route_context: Any) -> dict[str, Any]:
        """Resolve ``event`` with ``route_context`` visible to the routes as ``app.context``."""
        state = ResolutionState(event=self._to_proxy_event(event), lambda_context=lambda_context,
                                context=dict(route_context))
        token = self._request_state.set(state)
        try:
            return self.resolve(event, lambda_context)
        finally:
            self._request_state.reset(token)
