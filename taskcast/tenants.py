"""Tenants: who owns an API key, and each tenant's webhook signing secret.

The directory comes from ``TASKCAST_TENANTS`` (JSON) or, on AWS, from the Secrets Manager secret
named by ``TASKCAST_TENANTS_SECRET_ARN``. Keys and secrets are never logged: ``Tenant``'s repr hides them.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from taskcast import aws
from taskcast.settings import Settings


@dataclass(frozen=True)
class Tenant:
    name: str
    api_key: str = field(repr=False)
    # Standard Webhooks allows several signatures during a rotation: the first signs, all verify.
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def webhook_secret(self) -> str:
        return self.webhook_secrets[0] if self.webhook_secrets else ""


class TenantConfigError(ValueError):
    pass


def parse_tenants(text: str) -> dict[str, Tenant]:
    """``{"acme": {"api_key": "...", "webhook_secret": "whsec_..." | [..]}}`` → tenants by name."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise TenantConfigError(f"tenants are not valid JSON (line {error.lineno})") from None
    if not isinstance(raw, dict):
        raise TenantConfigError("tenants must be a JSON object keyed by tenant name")
    tenants: dict[str, Tenant] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("api_key"), str) or not entry["api_key"]:
            raise TenantConfigError(f"tenant {name!r} needs a non-empty string api_key")
        secrets: Any = entry.get("webhook_secret") or entry.get("webhook_secrets") or []
        if isinstance(secrets, str):
            secrets = [secrets]
        if not all(isinstance(secret, str) and secret.startswith("whsec_") for secret in secrets):
            raise TenantConfigError(f"tenant {name!r}: webhook secrets must be strings starting with whsec_")
        tenants[name] = Tenant(name=name, api_key=entry["api_key"], webhook_secrets=tuple(secrets))
    return tenants


class TenantDirectory:
    def __init__(self, tenants: dict[str, Tenant]) -> None:
        self._tenants = tenants

    @classmethod
    def from_settings(cls, settings: Settings, secrets_client: Any = None) -> TenantDirectory:
        if settings.tenants_json:
            return cls(parse_tenants(settings.tenants_json))
        if settings.tenants_secret_arn:
            client = secrets_client or aws.client("secretsmanager")
            text = client.get_secret_value(SecretId=settings.tenants_secret_arn)["SecretString"]
            return cls(parse_tenants(text))
        return cls({})

    def by_api_key(self, api_key: str | None) -> Tenant | None:
        """The tenant owning ``api_key``. Every key is compared, in constant time, whatever matches."""
        if not api_key:
            return None
        found: Tenant | None = None
        offered = api_key.encode()
        for tenant in self._tenants.values():
            if hmac.compare_digest(offered, tenant.api_key.encode()):
                found = tenant
        return found

    def get(self, name: str) -> Tenant | None:
        return self._tenants.get(name)

    def names(self) -> list[str]:
        return list(self._tenants)
