"""``Idempotency-Key`` on create, with Powertools idempotency over DynamoDB.

The idempotent unit is ``{"tenant", "key", "body"}``: the record's key hashes tenant and key (another
tenant's identical key is another record, hence another task), and the body is the payload that a
replay must match (same body → the same task again; another body → ``IdempotencyValidationError``, 422).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

# How long a key is remembered: a day, as common APIs do; tasks themselves live longer.
KEY_LIFETIME_S = 24 * 3600
MAX_KEY_LENGTH = 255
KEY_PREFIX = "taskcast.create_task"


def key_refusal(key: str) -> str | None:
    """Why an ``Idempotency-Key`` value cannot be used, or None."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters"
    if not key.isprintable():
        return "Idempotency-Key must be printable text"
    return None


class IdempotentCreation:
    def __init__(self, table_name: str, client: Any = None, lifetime_s: int = KEY_LIFETIME_S) -> None:
        self.persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)
        self.lifetime_s = lifetime_s
        # Configured once here: Powertools configures a layer on its first use, which is not safe for
        # two first requests arriving together on the threads of one process (the local stack).
        self.persistence.configure(self._config(None), key_prefix=KEY_PREFIX)

    def _config(self, lambda_context: Any) -> IdempotencyConfig:
        return IdempotencyConfig(
            event_key_jmespath="[tenant, key]",
            payload_validation_jmespath="body",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=self.lifetime_s,
            # Lets an interrupted first attempt expire with the invocation instead of blocking the key.
            lambda_context=lambda_context if hasattr(lambda_context, "get_remaining_time_in_millis") else None,
        )

    def run(
        self, tenant: str, key: str, body: dict[str, Any], create: Callable[[], str], lambda_context: Any = None
    ) -> str:
        """The id of the task created for (tenant, key): ``create()`` runs only for the first request."""
        @idempotent_function(
            data_keyword_argument="request",
            persistence_store=self.persistence,
            config=self._config(lambda_context),
            key_prefix=KEY_PREFIX,
        )
        def create_once(request: dict[str, Any]) -> dict[str, str]:
            return {"task_id": create()}

        return str(create_once(request={"tenant": tenant, "key": key, "body": body})["task_id"])
