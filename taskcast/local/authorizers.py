"""Lambda authorizers as API Gateway applies them: the answer's IAM policy judged against the
method ARN, the outcome (allow / 401 / 403 / 500), the context handed on to the integration, and the
cache API Gateway keeps per identity (``ReauthorizeEvery``)."""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from taskcast.local.functions import Invocation

ALLOW, UNAUTHORIZED, DENY, FAILURE = "allow", "unauthorized", "deny", "failure"


@dataclass(frozen=True)
class Decision:
    outcome: str  # ALLOW | UNAUTHORIZED | DENY | FAILURE
    principal_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOW

    def request_context(self, latency_ms: int = 0) -> dict[str, Any]:
        """``requestContext.authorizer`` for the integration: principalId, latency and the context keys."""
        return {"principalId": self.principal_id, "integrationLatency": latency_ms, **self.context}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(pattern: str, value: str) -> bool:
    # IAM wildcards: * is any run of characters (slashes included), ? is one character.
    return fnmatch.fnmatchcase(value, pattern)


def policy_effect(policy: dict[str, Any], method_arn: str) -> str | None:
    """``"Allow"``, ``"Deny"`` or None (nothing matched) for ``execute-api:Invoke`` on ``method_arn``."""
    allowed = False
    for statement in _as_list(policy.get("Statement") or []):
        if not isinstance(statement, dict):
            continue
        actions = [str(action) for action in _as_list(statement.get("Action", []))]
        if not any(_matches(action, "execute-api:Invoke") for action in actions):
            continue
        resources = [str(resource) for resource in _as_list(statement.get("Resource", []))]
        if not any(_matches(resource, method_arn) for resource in resources):
            continue
        effect = str(statement.get("Effect", ""))
        if effect == "Deny":
            return "Deny"  # an explicit deny wins over any allow
        allowed = allowed or effect == "Allow"
    return "Allow" if allowed else None


def stringify_context(context: dict[str, Any]) -> dict[str, str]:
    """API Gateway hands authorizer context values on as strings (``true``, ``42``)."""
    converted: dict[str, str] = {}
    for key, value in context.items():
        if isinstance(value, bool):
            converted[key] = str(value).lower()
        elif value is None:
            converted[key] = ""
        else:
            converted[key] = str(value)
    return converted


def decide(invocation: Invocation, method_arn: str) -> Decision:
    """The outcome of one authorizer invocation for ``method_arn``."""
    if invocation.failed:
        message = (invocation.error or {}).get("errorMessage")
        return Decision(UNAUTHORIZED if message == "Unauthorized" else FAILURE)
    answer = invocation.payload
    well_formed = isinstance(answer, dict) and "principalId" in answer
    if not well_formed or not isinstance(answer.get("policyDocument"), dict):
        return Decision(FAILURE)
    context = answer.get("context") or {}
    if not isinstance(context, dict) or any(isinstance(value, dict | list) for value in context.values()):
        return Decision(FAILURE)  # API Gateway refuses nested context values
    effect = policy_effect(answer["policyDocument"], method_arn)
    return Decision(
        ALLOW if effect == "Allow" else DENY,
        principal_id=str(answer["principalId"]),
        context=stringify_context(context),
        policy=answer["policyDocument"],
    )


class AuthorizerCache:
    """Authorizer answers by identity for ``ttl_s`` seconds (0 disables), re-judged per method ARN."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[Hashable, tuple[float, Invocation]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Invocation | None:
        if self.ttl_s <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self.clock():
                self._entries.pop(key, None)
                return None
            return entry[1]

    def put(self, key: Hashable, invocation: Invocation) -> None:
        # Only policies are cached; a 401 or a failure asks the authorizer again next time.
        if self.ttl_s <= 0 or invocation.failed:
            return
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (self.clock() + self.ttl_s, invocation)
