"""Building the push path's parts from settings, once per process (a Lambda container or the local stack)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from streams.connections import ConnectionPoster, management_client
from streams.markers import Markers
from streams.retry_queue import RetryQueue
from streams.webhooks import WebhookDelivery, WebhookSender
from streams.websocket_fanout import WebSocketFanout
from taskcast import aws
from taskcast.deliveries import DeliveryLog
from taskcast.metrics import MetricsSink, default_metrics
from taskcast.settings import Settings
from taskcast.store import TaskStore
from taskcast.subscriptions import SubscriptionStore
from taskcast.tenants import Tenant, TenantDirectory


class LazyTenants:
    """The tenant directory, read on first use: only webhooks need the secrets, so the WebSocket
    function (which has no access to the tenants secret on AWS) never reads them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._directory: TenantDirectory | None = None

    def get(self, name: str) -> Tenant | None:
        with self._lock:
            if self._directory is None:
                self._directory = TenantDirectory.from_settings(self._settings)
        return self._directory.get(name)


@dataclass(frozen=True)
class PushPath:
    settings: Settings
    tasks: TaskStore
    subscriptions: SubscriptionStore
    poster: ConnectionPoster
    fanout: WebSocketFanout
    webhooks: WebhookDelivery
    # Webhook attempts run in their own pool so a slow receiver never holds WebSocket posts back.
    webhook_pool: ThreadPoolExecutor
    metrics: MetricsSink  # flushed by the consumer and the retry handler at the end of each invocation


def build_push_path(settings: Settings, metrics: MetricsSink | None = None) -> PushPath:
    metrics = metrics if metrics is not None else default_metrics()
    dynamodb = aws.client("dynamodb")
    workers = max(1, settings.fanout_workers)
    tasks = TaskStore(settings.tasks_table, client=dynamodb, retention_s=settings.retention_s)
    subscriptions = SubscriptionStore(settings.subscriptions_table, client=dynamodb, ttl_s=settings.subscription_ttl_s)
    poster = ConnectionPoster(management_client(settings.management_url, workers * 2), workers=workers)
    markers = Markers(settings.tasks_table, client=dynamodb)
    webhooks = WebhookDelivery(
        sender=WebhookSender(
            timeout_s=settings.webhook_timeout_s, allow_loopback=settings.allow_loopback_callbacks
        ),
        tenants=LazyTenants(settings),
        markers=markers,
        log=DeliveryLog(settings.tasks_table, client=dynamodb),
        queue=RetryQueue(settings.webhook_retry_queue_url, settings.webhook_dlq_url, client=aws.client("sqs")),
        schedule=settings.webhook_retry_schedule,
        metrics=metrics,
    )
    return PushPath(
        settings=settings,
        tasks=tasks,
        subscriptions=subscriptions,
        poster=poster,
        fanout=WebSocketFanout(subscriptions, poster, markers, metrics=metrics),
        webhooks=webhooks,
        webhook_pool=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhooks"),
        metrics=metrics,
    )


# The environment that shapes the push path: tables, queues, endpoints, tenants and tunables.
_ENVIRONMENT_PREFIXES = ("TASKCAST_", "AWS_ENDPOINT_URL", "WEBHOOK_", "TASKS_TABLE", "SUBSCRIPTIONS_TABLE")
_built_lock = threading.Lock()
_built: tuple[tuple[tuple[str, str], ...], PushPath] | None = None


def _environment_key() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, value) for key, value in os.environ.items() if key.startswith(_ENVIRONMENT_PREFIXES)))


def push_path() -> PushPath:
    """The process-wide push path, built from the environment on first use.

    Rebuilt when the environment it was built from changes (the local stack restarting on other
    ports, tests switching settings); on Lambda it is built once per container.
    """
    global _built
    key = _environment_key()
    with _built_lock:
        if _built is None or _built[0] != key:
            # The previous one is dropped, not shut down: an invocation may still be using it.
            _built = (key, build_push_path(Settings.from_env()))
        return _built[1]


def reset() -> None:
    """Forget the process-wide push path and wait for its threads (tests, local stack shutdown)."""
    global _built
    with _built_lock:
        previous, _built = _built, None
    if previous is not None:
        previous[1].poster.shutdown()
        previous[1].webhook_pool.shutdown(wait=True)
    management_client.cache_clear()
