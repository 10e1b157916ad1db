"""What the push functions are built from: one typed deps object per kind of function, made from settings.

- ``WebSocketDeps``: the WebSocket function (replies, the subscribe handshake). It has no webhook parts,
  so it never reads the tenants' webhook secrets (on AWS it has no access to them).
- ``PushDeps``: the stream consumer (fan-out, the webhook hand-off queue, the registered endpoints'
  filters, metrics). It never calls a receiver, so it never reads the tenants' or the endpoints' webhook
  secrets either.
- ``DeliveryDeps``: the webhook delivery function (signing, sending, breakers, the tenants' slots).

Entry points build theirs once at module scope, i.e. once per Lambda container.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from taskcast import aws
from taskcast.endpoint_store import EndpointDeliveryLog, EndpointSecrets, EndpointStore
from taskcast.limits import SubscriptionLimits
from taskcast.metrics import MetricsSink, default_metrics
from taskcast.push.connections_client import ConnectionsClient
from taskcast.push.fanout import ConnectionPoster, WebSocketFanout
from taskcast.settings import Settings
from taskcast.store import Breakers, DeliveryLog, DeliverySlots, Markers, SubscriptionStore, TaskStore
from taskcast.tenant_cache import RefreshingTenantDirectory
from taskcast.webhooks.breaker import BreakerPolicy
from taskcast.webhooks.delivery import WebhookDelivery, WebhookSender
from taskcast.webhooks.endpoint_attempts import EndpointAttempts
from taskcast.webhooks.retry import DeliveryHandler
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
            poster=ConnectionPoster(connections_client(settings.management_url, workers * 2), workers=workers),
            limits=SubscriptionLimits.from_settings(settings),
        )


@dataclass(frozen=True)
class PushDeps:
    settings: Settings
    tasks: TaskStore
    subscriptions: SubscriptionStore
    poster: ConnectionPoster
    fanout: WebSocketFanout
    webhook_queue: RetryQueue  # first attempts are handed off here, never sent by the consumer
    endpoints: EndpointStore  # the tenants' registered endpoints, matched by filter (never their secrets)
    endpoint_log: EndpointDeliveryLog  # where a disabled endpoint's changes are logged, not queued
    metrics: MetricsSink  # flushed at the end of each invocation

    @classmethod
    def from_settings(cls, settings: Settings, metrics: MetricsSink | None = None) -> PushDeps:
        metrics = metrics if metrics is not None else default_metrics()
        dynamodb = aws.client("dynamodb")
        socket = WebSocketDeps.from_settings(settings)
        markers = Markers(settings.tasks_table, client=dynamodb)
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
            webhook_queue=webhook_queue(settings),
            endpoints=EndpointStore(settings.endpoints_table, client=dynamodb),
            endpoint_log=EndpointDeliveryLog(settings.endpoints_table, client=dynamodb),
            metrics=metrics,
        )

    def close(self) -> None:
        """Wait for the pool's threads (a process that builds several, such as a test run)."""
        self.poster.shutdown()


@cache
def connections_client(endpoint_url: str, pool_size: int) -> ConnectionsClient:
    """The shared ``PostToConnection`` client of a process: the lean one, a fraction of boto3's CPU per post
    (``python -m bench.post_cost``); ``ConnectionPoster`` keeps the retries and the Gone cleanup."""
    return ConnectionsClient(endpoint_url, pool_size=pool_size)


def webhook_queue(settings: Settings) -> RetryQueue:
    return RetryQueue(settings.webhook_retry_queue_url, settings.webhook_dlq_url, client=aws.client("sqs"))


@dataclass(frozen=True)
class DeliveryDeps:
    webhooks: WebhookDelivery
    handler: DeliveryHandler
    metrics: MetricsSink  # flushed at the end of each invocation

    @classmethod
    def from_settings(cls, settings: Settings, metrics: MetricsSink | None = None) -> DeliveryDeps:
        metrics = metrics if metrics is not None else default_metrics()
        dynamodb = aws.client("dynamodb")
        queue = webhook_queue(settings)
        endpoints = EndpointAttempts(
            endpoints=EndpointStore(settings.endpoints_table, client=dynamodb),
            secrets=EndpointSecrets(settings.endpoint_secrets_table, client=dynamodb),
            log=EndpointDeliveryLog(settings.endpoints_table, client=dynamodb),
            queue=queue,
            schedule=settings.webhook_retry_schedule,
            disable_after_s=settings.endpoint_disable_after_s,
            metrics=metrics,
        )
        webhooks = WebhookDelivery(
            sender=WebhookSender(
                timeout_s=settings.webhook_timeout_s, allow_loopback=settings.allow_loopback_callbacks
            ),
            tenants=RefreshingTenantDirectory.from_settings(settings),
            markers=Markers(settings.tasks_table, client=dynamodb),
            log=DeliveryLog(settings.tasks_table, client=dynamodb),
            queue=queue,
            schedule=settings.webhook_retry_schedule,
            metrics=metrics,
            endpoints=endpoints,
        )
        handler = DeliveryHandler(
            webhooks=webhooks,
            breakers=Breakers(settings.tasks_table, client=dynamodb),
            slots=DeliverySlots(settings.tasks_table, settings.webhook_tenant_concurrency, client=dynamodb),
            policy=BreakerPolicy(
                threshold=settings.webhook_breaker_threshold,
                base_s=settings.webhook_breaker_cool_down_s,
                max_s=settings.webhook_breaker_max_cool_down_s,
            ),
            metrics=metrics,
        )
        return cls(webhooks=webhooks, handler=handler, metrics=metrics)
