"""Task tokens: the credential an external worker reports with, instead of a tenant's API key.

A token is ``tt_<task id>.<secret>``: the task id scopes it to one task by construction, and the secret
(32 random bytes, URL-safe base64) proves it was issued for that task. Only the secret's SHA-256 is kept,
on the task itself, so a leaked table holds no usable token; the comparison is constant-time. A token is
revoked with its task: once the task has ended (or was cancelled) every report is refused. Nothing here
logs a token or its secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

PREFIX = "tt_"
SECRET_BYTES = 32
# Task ids are UUIDs; the bound keeps a hostile path segment from costing anything to parse.
_TOKEN = re.compile(r"^tt_(?P<task_id>[A-Za-z0-9-]{1,64})\.(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class IssuedToken:
    token: str  # handed to the worker once, never stored
    secret_sha256: str  # stored on the task

    def __repr__(self) -> str:  # never show the token
        return "IssuedToken(<redacted>)"


@dataclass(frozen=True)
class PresentedToken:
    task_id: str
    secret: str = ""

    def __repr__(self) -> str:
        return f"PresentedToken(task_id={self.task_id!r})"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(task_id: str, random_secret: Callable[[int], str] = secrets.token_urlsafe) -> IssuedToken:
    secret = random_secret(SECRET_BYTES)
    token = f"{PREFIX}{task_id}.{secret}"
    if parse(token) is None:
        raise ValueError("a task id of letters, digits and '-' (at most 64) is needed for a token")
    return IssuedToken(token=token, secret_sha256=secret_hash(secret))


def parse(token: str) -> PresentedToken | None:
    """The task and secret a token names, or None when it is not a token's shape."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    return PresentedToken(task_id=match["task_id"], secret=match["secret"])


def matches(presented: PresentedToken, stored_sha256: str | None) -> bool:
    """Whether the presented secret is the one issued; a task without a stored hash matches nothing."""
    if not stored_sha256:
        return False
    return hmac.compare_digest(secret_hash(presented.secret), stored_sha256)
