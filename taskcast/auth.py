"""Pure decisions of the Lambda authorizers: read the offered key, build the IAM policy answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskcast import headers as headers_module


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A header's value, whatever its case (API Gateway keeps the client's casing)."""
    value = headers_module.header(headers, name)
    return value if isinstance(value, str) else None


def bearer_token(authorization: str | None) -> str | None:
    """``"Bearer <key>"`` → ``<key>`` (scheme case-insensitive, RFC 6750); None for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def api_wildcard(method_arn: str) -> str:
    """``arn:…:apiId/stage/GET/tasks/x`` → ``arn:…:apiId/stage/*/*``.

    API Gateway caches one policy per key for every route, so the policy must cover all of them.
    """
    parts = method_arn.split("/")
    if len(parts) < 2:
        return method_arn
    return f"{parts[0]}/{parts[1]}/*/*"


def policy(principal_id: str, effect: str, resource: str, context: dict[str, str] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }
    if context:
        answer["context"] = context
    return answer
