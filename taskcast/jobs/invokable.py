"""Which functions the built-in ``invoke`` job may run: only those the deployment lists, never the stack's own.

Pure functions over the setting's values. An entry is a function name or ARN (optionally with a
``:qualifier``); the template lists ARNs, because IAM grants ``lambda:InvokeFunction`` on exactly those.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

_ARN_PREFIX = re.compile(r"^(?:arn:[^:]+:lambda:[^:]*:)?(?:\d{12}:)?function:")
# What AWS error text gives away about the deployment: ARNs and 12-digit account ids.
_ARN = re.compile(r"arn:aws[\w-]*:[^\s'\",]*")
_ACCOUNT = re.compile(r"(?<!\d)\d{12}(?!\d)")


def local_part(reference: str) -> str:
    """``arn:aws:lambda:r:123456789012:function:name:alias`` → ``name:alias``; a bare name stays as it is."""
    return _ARN_PREFIX.sub("", reference.strip())


def function_name(reference: str) -> str:
    """The function's name alone: no ARN prefix, no qualifier."""
    return local_part(reference).split(":", 1)[0]


def invoke_target(requested: str, allowed: Sequence[str], own: Collection[str]) -> str | None:
    """The allow-list entry to invoke for ``requested``, or None when it may not be invoked.

    ``requested`` names an entry exactly, or by the name (and qualifier) of exactly one listed ARN.
    The stack's own functions (``own``) are refused whatever the list says: invoking them with a forged
    event would reach past the tenant's own tasks.
    """
    own_names = {function_name(name) for name in own if name}
    if function_name(requested) in own_names:
        return None
    candidates = [entry for entry in allowed if entry and function_name(entry) not in own_names]
    if requested in candidates:
        return requested
    by_name = [entry for entry in candidates if local_part(entry) == requested]
    return by_name[0] if len(by_name) == 1 else None


def scrub_aws_text(text: str) -> str:
    """``text`` without ARNs or account ids, for a task's ``error`` (read by the tenant)."""
    return _ACCOUNT.sub("<account>", _ARN.sub("<arn>", text))
