"""Every setting taskcast reads, with its explicit default, in one place.

Settings come from environment variables: the template sets them on AWS, the local stack sets
them from the same template, and tests build a ``Settings`` directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

KIB = 1024
GIB = 1024**3

# Standard Webhooks' recommended schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_WEBHOOK_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def parse_retry_schedule(text: str) -> tuple[float, ...]:
    """``"5,300,1800"`` → ``(5.0, 300.0, 1800.0)``; every delay must be a non-negative number."""
    delays = tuple(float(part) for part in text.split(",") if part.strip())
    if any(delay < 0 for delay in delays):
        raise ValueError("webhook retry delays must be >= 0")
    return delays


def _names(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` → ``("a", "b", "c")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    tasks_table: str = "taskcast-tasks"
    subscriptions_table: str = "taskcast-subscriptions"
    idempotency_table: str = "taskcast-idempotency"
    # Registered webhook endpoints and their delivery logs; their signing secrets apart (docs/webhooks.md).
    endpoints_table: str = "taskcast-endpoints"
    endpoint_secrets_table: str = "taskcast-endpoint-secrets"
    worker_function: str = "taskcast-worker"
    large_worker_function: str = "taskcast-large-worker"  # jobs declared with memory="large"
    results_bucket: str = "taskcast-payloads"
    # Public URLs that clients are told about (links.websocket) and the @connections endpoint.
    websocket_url: str = "ws://127.0.0.1:3001"
    management_url: str = "http://127.0.0.1:3002"
    webhook_retry_queue_url: str = ""
    webhook_dlq_url: str = ""
    tenants_json: str = ""
    tenants_secret_arn: str = ""
    # Warm functions reload the tenants this often, so a revoked key or dropped secret dies within it
    # (taskcast.tenant_cache); a failed reload serves the last good directory for at most max_stale longer.
    tenant_cache_ttl_s: float = 60.0
    tenant_cache_max_stale_s: float = 300.0
    allow_loopback_callbacks: bool = False
    webhook_retry_schedule: tuple[float, ...] = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    webhook_timeout_s: float = 15.0  # the hard total deadline of one attempt
    webhook_tenant_concurrency: int = 4  # a tenant's attempts in flight at once, across all invocations
    webhook_breaker_threshold: int = 5  # consecutive failed attempts that open an endpoint's breaker
    webhook_breaker_cool_down_s: float = 30.0  # the first cool-down; doubles per opening in a row
    webhook_breaker_max_cool_down_s: float = 900.0
    # An endpoint whose every delivery failed for this long is disabled (Svix's 5 days).
    endpoint_disable_after_s: float = 5 * 86400.0
    endpoint_replay_rate: float = 10.0  # replayed deliveries per second and endpoint, at most
    endpoint_secret_overlap_s: float = 86400.0  # after a rotation, the old secret still signs this long
    endpoints_per_tenant: int = 20
    endpoint_test_interval_s: float = 5.0  # one test event per endpoint this often, at most
    retention_days: int = 7
    inline_limit_bytes: int = 256 * KIB
    long_poll_max_s: float = 25.0
    long_poll_interval_s: float = 0.1  # the first re-read of a hold; later ones back off (doubling)
    long_poll_max_interval_s: float = 1.0  # the longest gap between a hold's re-reads
    long_polls_per_tenant: int = 20  # concurrent held requests of one tenant; more answer 429
    retry_after_s: int = 2
    # API Gateway keeps a WebSocket at most 2 hours; subscriptions outlive that by a margin.
    subscription_ttl_s: int = 3 * 3600
    fanout_workers: int = 16
    # Tasks the stream consumer handles at once within one batch (each task's changes stay in order).
    consumer_task_concurrency: int = 64
    # WebSocket limits (docs/operations.md, "Security: limits and defaults").
    subscriptions_per_connection: int = 100
    subscribers_per_task: int = 2000
    connections_per_tenant: int = 5000
    # The most time one change's posts may take before the rest fail (the stream record is then retried).
    fanout_change_budget_s: float = 20.0
    # Large payloads through S3 (docs/large-payloads.md).
    upload_events_queue_url: str = ""
    # External jobs: where their workers receive tasks, and where heartbeat checks wait (docs/jobs.md).
    external_jobs_queue_url: str = ""
    external_jobs_event_bus: str = "default"  # external jobs declared handoff="eventbridge" go to this bus
    worker_failure_queue_url: str = ""
    upload_url_ttl_s: int = 600  # how long a presigned upload URL stays valid
    upload_grace_s: int = 300  # after the URL expires, how long before a task still waiting for it fails
    max_upload_bytes: int = 5 * GIB  # S3's limit for one PUT
    result_url_ttl_s: int = 300  # how long a presigned result URL stays valid
    result_inline_limit_bytes: int = 256 * KIB  # larger results go to S3
    result_upload_url_ttl_s: int = 900  # how long an external worker's presigned result PUT stays valid
    max_result_upload_bytes: int = 100 * 1024 * KIB  # the largest result an external worker may upload
    # The built-in invoke job: the functions it may run (names or ARNs), and the stack's own, which it never may.
    invokable_functions: tuple[str, ...] = ()
    stack_functions: tuple[str, ...] = ()
    # Browser origins allowed to call the REST API from their own pages (CORS); empty: same origin only.
    cors_allowed_origins: tuple[str, ...] = ()
    # Users' job modules, imported at cold start by the REST and worker functions (docs/jobs.md).
    job_modules: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        schedule = env.get("TASKCAST_WEBHOOK_RETRY_SCHEDULE")
        return cls(
            tasks_table=env.get("TASKS_TABLE", defaults.tasks_table),
            subscriptions_table=env.get("SUBSCRIPTIONS_TABLE", defaults.subscriptions_table),
            idempotency_table=env.get("IDEMPOTENCY_TABLE", defaults.idempotency_table),
            endpoints_table=env.get("ENDPOINTS_TABLE", defaults.endpoints_table),
            endpoint_secrets_table=env.get("ENDPOINT_SECRETS_TABLE", defaults.endpoint_secrets_table),
            endpoint_disable_after_s=float(
                env.get("TASKCAST_ENDPOINT_DISABLE_AFTER", defaults.endpoint_disable_after_s)
            ),
            endpoint_replay_rate=float(env.get("TASKCAST_ENDPOINT_REPLAY_RATE", defaults.endpoint_replay_rate)),
            endpoint_secret_overlap_s=float(
                env.get("TASKCAST_ENDPOINT_SECRET_OVERLAP", defaults.endpoint_secret_overlap_s)
            ),
            endpoints_per_tenant=int(env.get("TASKCAST_ENDPOINTS_PER_TENANT", defaults.endpoints_per_tenant)),
            endpoint_test_interval_s=float(
                env.get("TASKCAST_ENDPOINT_TEST_INTERVAL", defaults.endpoint_test_interval_s)
            ),
            worker_function=env.get("WORKER_FUNCTION", defaults.worker_function),
            large_worker_function=env.get("LARGE_WORKER_FUNCTION", defaults.large_worker_function),
            results_bucket=env.get("PAYLOADS_BUCKET", defaults.results_bucket),
            websocket_url=env.get("TASKCAST_WEBSOCKET_URL", defaults.websocket_url),
            management_url=env.get("TASKCAST_MANAGEMENT_URL", defaults.management_url),
            webhook_retry_queue_url=env.get("WEBHOOK_RETRY_QUEUE_URL", ""),
            webhook_dlq_url=env.get("WEBHOOK_DLQ_URL", ""),
            tenants_json=env.get("TASKCAST_TENANTS", ""),
            tenants_secret_arn=env.get("TASKCAST_TENANTS_SECRET_ARN", ""),
            tenant_cache_ttl_s=float(env.get("TASKCAST_TENANT_CACHE_TTL", defaults.tenant_cache_ttl_s)),
            tenant_cache_max_stale_s=float(
                env.get("TASKCAST_TENANT_CACHE_MAX_STALE", defaults.tenant_cache_max_stale_s)
            ),
            allow_loopback_callbacks=_flag(env.get("TASKCAST_ALLOW_LOOPBACK_CALLBACKS"), False),
            webhook_retry_schedule=(
                parse_retry_schedule(schedule) if schedule else defaults.webhook_retry_schedule
            ),
            webhook_timeout_s=float(env.get("TASKCAST_WEBHOOK_TIMEOUT", defaults.webhook_timeout_s)),
            webhook_tenant_concurrency=int(
                env.get("TASKCAST_WEBHOOK_TENANT_CONCURRENCY", defaults.webhook_tenant_concurrency)
            ),
            webhook_breaker_threshold=int(
                env.get("TASKCAST_WEBHOOK_BREAKER_THRESHOLD", defaults.webhook_breaker_threshold)
            ),
            webhook_breaker_cool_down_s=float(
                env.get("TASKCAST_WEBHOOK_BREAKER_COOL_DOWN", defaults.webhook_breaker_cool_down_s)
            ),
            webhook_breaker_max_cool_down_s=float(
                env.get("TASKCAST_WEBHOOK_BREAKER_MAX_COOL_DOWN", defaults.webhook_breaker_max_cool_down_s)
            ),
            retention_days=int(env.get("TASKCAST_RETENTION_DAYS", defaults.retention_days)),
            long_poll_max_s=float(env.get("TASKCAST_LONG_POLL_MAX", defaults.long_poll_max_s)),
            long_poll_interval_s=float(
                env.get("TASKCAST_LONG_POLL_INTERVAL", defaults.long_poll_interval_s)
            ),
            long_poll_max_interval_s=float(
                env.get("TASKCAST_LONG_POLL_MAX_INTERVAL", defaults.long_poll_max_interval_s)
            ),
            long_polls_per_tenant=int(env.get("TASKCAST_LONG_POLLS_PER_TENANT", defaults.long_polls_per_tenant)),
            retry_after_s=int(env.get("TASKCAST_RETRY_AFTER", defaults.retry_after_s)),
            fanout_workers=int(env.get("TASKCAST_FANOUT_WORKERS", defaults.fanout_workers)),
            consumer_task_concurrency=int(
                env.get("TASKCAST_CONSUMER_TASK_CONCURRENCY", defaults.consumer_task_concurrency)
            ),
            subscriptions_per_connection=int(
                env.get("TASKCAST_SUBSCRIPTIONS_PER_CONNECTION", defaults.subscriptions_per_connection)
            ),
            subscribers_per_task=int(env.get("TASKCAST_SUBSCRIBERS_PER_TASK", defaults.subscribers_per_task)),
            connections_per_tenant=int(
                env.get("TASKCAST_CONNECTIONS_PER_TENANT", defaults.connections_per_tenant)
            ),
            fanout_change_budget_s=float(
                env.get("TASKCAST_FANOUT_CHANGE_BUDGET", defaults.fanout_change_budget_s)
            ),
            upload_events_queue_url=env.get("UPLOAD_EVENTS_QUEUE_URL", ""),
            external_jobs_queue_url=env.get("EXTERNAL_JOBS_QUEUE_URL", ""),
            external_jobs_event_bus=env.get("EXTERNAL_JOBS_EVENT_BUS", defaults.external_jobs_event_bus),
            worker_failure_queue_url=env.get("WORKER_FAILURE_QUEUE_URL", ""),
            upload_url_ttl_s=int(env.get("TASKCAST_UPLOAD_URL_TTL", defaults.upload_url_ttl_s)),
            upload_grace_s=int(env.get("TASKCAST_UPLOAD_GRACE", defaults.upload_grace_s)),
            max_upload_bytes=int(env.get("TASKCAST_MAX_UPLOAD_BYTES", defaults.max_upload_bytes)),
            result_url_ttl_s=int(env.get("TASKCAST_RESULT_URL_TTL", defaults.result_url_ttl_s)),
            result_inline_limit_bytes=int(
                env.get("TASKCAST_RESULT_INLINE_LIMIT", defaults.result_inline_limit_bytes)
            ),
            result_upload_url_ttl_s=int(env.get("TASKCAST_RESULT_UPLOAD_URL_TTL", defaults.result_upload_url_ttl_s)),
            max_result_upload_bytes=int(
                env.get("TASKCAST_MAX_RESULT_UPLOAD_BYTES", defaults.max_result_upload_bytes)
            ),
            invokable_functions=_names(env.get("TASKCAST_INVOKABLE_FUNCTIONS", "")),
            cors_allowed_origins=_names(env.get("TASKCAST_CORS_ALLOWED_ORIGINS", "")),
            job_modules=_names(env.get("TASKCAST_JOB_MODULES", "")),
            # The REST function is told the others' names; its own (and the worker's) it knows anyway.
            stack_functions=_names(
                ",".join(
                    [
                        env.get("TASKCAST_STACK_FUNCTIONS", ""),
                        env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
                        env.get("WORKER_FUNCTION", defaults.worker_function),
                        env.get("LARGE_WORKER_FUNCTION", defaults.large_worker_function),
                    ]
                )
            ),
        )

    @property
    def retention_s(self) -> int:
        return self.retention_days * 86400
