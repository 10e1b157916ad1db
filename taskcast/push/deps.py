"""What the push functions are built from: one typed deps object per kind of function, made from settings.

- ``WebSocketDeps``: the WebSocket function (replies, the subscribe handshake). It has no webhook parts,
  so it never reads the tenants' webhook secrets (on AWS it has no access to them).
- ``PushDeps``: the stream consumer and the webhook retry handler (fan-out, webhooks, metrics).

Entry points build theirs once at module scope, i.e. once per Lambda container.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from taskcast import aws
from taskcast.limits import SubscriptionLimits
from taskcast.metrics import MetricsSink, default_metrics
from taskcast.push.fanout import ConnectionPoster, WebSocketFanout, management_client
from taskcast.settings import Settings
from taskcast.store import DeliveryLog, Markers, SubscriptionStore, TaskStore
from taskcast.tenants import TenantDirectory
from taskcast.webhooks.delivery import WebhookDelivery, WebhookSender
from taskcast.webhooks.retry_queue import RetryQueue


@dataclass(frozen=True)
class WebSocketDeps:
    tasks: TaskStore
    subscriptions: SubscriptionStore
    poster: ConnectionPoster
    limits: SubscriptionLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> WebSocketDeps:
        dynamodb = aws.client("dynamodb")
        workers = max(1, settings.fanout_workers)
        return cls(
            tasks=TaskStore(settings.tasks_table, client=dynamodb, retention_s=settings.retention_s),
            subscriptions=SubscriptionStore(
                settings.subscriptions_table, client=dynamodb, ttl_s=settings.subscription_ttl_s
            ),
            poster=ConnectionPoster(management_client(settings.management_url, workers * 2), workers=workers),
            limits=SubscriptionLimits.from_settings(settings),
        )


@dataclass(frozen=True)
class PushDeps:
    settings: Settings
    tasks: TaskStore
    subscriptions: SubscriptionStore
    poster: ConnectionPoster
    fanout: WebSocketFanout
    webhooks: WebhookDelivery
    # Webhook attempts run in their own pool so a slow receiver never holds WebSocket posts back.
    webhook_pool: ThreadPoolExecutor
    metrics: MetricsSink  # flushed by the consumer and the retry handler at the end of each invocation

    @classmethod
    def from_settings(cls, settings: Settings, metrics: MetricsSink | None = None) -> PushDeps:
        metrics = metrics if metrics is not None else default_metrics()
        dynamodb = aws.client("dynamodb")
        socket = WebSocketDeps.from_settings(settings)
        markers = Markers(settings.tasks_table, client=dynamodb)
        webhooks = WebhookDelivery(
            sender=WebhookSender(
                timeout_s=settings.webhook_timeout_s, allow_loopback=settings.allow_loopback_callbacks
            ),
            tenants=TenantDirectory.from_settings(settings),
            markers=markers,
            log=DeliveryLog(settings.tasks_table, client=dynamodb),
            queue=RetryQueue(settings.webhook_retry_queue_url, settings.webhook_dlq_url, client=aws.client("sqs")),
            schedule=settings.webhook_retry_schedule,
            metrics=metrics,
        )
        return cls(
            settings=settings,
            tasks=socket.tasks,
            subscriptions=socket.subscriptions,
            poster=socket.poster,
            fanout=WebSocketFanout(
                socket.subscriptions,
                socket.poster,
                markers,
                metrics=metrics,
                change_budget_s=settings.fanout_change_budget_s,
            ),
            webhooks=webhooks,
            webhook_pool=ThreadPoolExecutor(max_workers=max(1, settings.fanout_workers), thread_name_prefix="webhooks"),
            metrics=metrics,
        )

    def close(self) -> None:
        """Wait for the pools' threads (a process that builds several, such as a test run)."""
        self.poster.shutdown()
        self.webhook_pool.shutdown(wait=True)
