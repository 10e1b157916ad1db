"""Everything the REST routes use, built once per cold start from settings; tests pass their own."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskcast import aws
from taskcast.api.idempotency import IdempotentCreation
from taskcast.endpoint_store import EndpointDeliveryLog, EndpointSecrets, EndpointStore
from taskcast.external_queues import (
    ExternalJobEvents,
    ExternalJobInvoker,
    ExternalJobsQueue,
    Handoffs,
    HeartbeatChecks,
)
from taskcast.external_workers import ExternalWorkers
from taskcast.jobs import EntryPointSource, JobRegistry, default_registry, installed_entry_points, with_user_jobs
from taskcast.long_polls import LongPollLeases
from taskcast.presign import presigning_client
from taskcast.results import ResultStore
from taskcast.settings import Settings
from taskcast.store import DeliveryLog, Heartbeats, TaskStore
from taskcast.upload_queue import DeadlineQueue
from taskcast.uploads import UploadStore
from taskcast.webhooks.delivery import HostLookup, WebhookSender, check_callback_url, system_lookup
from taskcast.webhooks.endpoint_admin import EndpointAdmin
from taskcast.webhooks.retry_queue import RetryQueue
from taskcast.ws_tickets import TicketStore

# A test event is sent while the API request waits: bounded under API Gateway's 29 s integration timeout.
TEST_EVENT_TIMEOUT_CAP_S = 20.0

# Starts the worker of a task: ``(task_id, worker_class)``, the class being the task's ``worker_class``.
WorkerInvoker = Callable[[str, str], None]


class LambdaWorkerInvoker:
    """Starts the worker for a task with an asynchronous Lambda invoke (``InvocationType=Event``), on the
    worker function of the task's class (``standard`` or ``large``)."""

    def __init__(self, function_name: str, large_function_name: str, client: Any = None) -> None:
        self.functions = {"standard": function_name, "large": large_function_name}
        self.client = client or aws.client("lambda")

    @classmethod
    def from_settings(cls, settings: Settings) -> LambdaWorkerInvoker:
        return cls(settings.worker_function, settings.large_worker_function)

    def __call__(self, task_id: str, worker_class: str) -> None:
        self.client.invoke(
            FunctionName=self.functions[worker_class],
            InvocationType="Event",
            Payload=json.dumps({"task_id": task_id}).encode(),
        )


@dataclass
class ApiDeps:
    settings: Settings
    store: TaskStore
    deliveries: DeliveryLog
    invoke_worker: WorkerInvoker
    idempotency: IdempotentCreation
    uploads: UploadStore
    # Presigns upload and result URLs and checks that uploaded objects exist (S3 through SigV4).
    s3: Any
    deadlines: DeadlineQueue
    tickets: TicketStore
    long_polls: LongPollLeases
    external: ExternalWorkers
    endpoints: EndpointAdmin
    registry: JobRegistry = field(default_factory=lambda: default_registry)
    resolve_host: HostLookup = system_lookup
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        dynamodb: Any = None,
        invoke_worker: WorkerInvoker | None = None,
        registry: JobRegistry | None = None,
        resolve_host: HostLookup | None = None,
        s3: Any = None,
        sqs: Any = None,
        job_entry_points: EntryPointSource = installed_entry_points,
    ) -> ApiDeps:
        """The cold start's dependencies; without ``registry``, the default one with the users' jobs loaded."""
        dynamodb = dynamodb or aws.client("dynamodb")
        s3 = s3 or presigning_client()
        store = TaskStore(settings.tasks_table, dynamodb, retention_s=settings.retention_s)
        resolve_host = resolve_host or system_lookup
        return cls(
            settings=settings,
            store=store,
            deliveries=DeliveryLog(settings.tasks_table, dynamodb),
            invoke_worker=invoke_worker or LambdaWorkerInvoker.from_settings(settings),
            idempotency=IdempotentCreation(settings.idempotency_table, dynamodb),
            uploads=UploadStore(settings.tasks_table, dynamodb, retention_s=settings.retention_s),
            s3=s3,
            deadlines=DeadlineQueue(settings.upload_events_queue_url, sqs),
            tickets=TicketStore(settings.tasks_table, dynamodb),
            long_polls=LongPollLeases(settings.tasks_table, dynamodb),
            external=ExternalWorkers(
                store=store,
                heartbeats=Heartbeats(settings.tasks_table, dynamodb),
                jobs=Handoffs(
                    queue=ExternalJobsQueue(settings.external_jobs_queue_url, sqs),
                    events=ExternalJobEvents(settings.external_jobs_event_bus),
                    invoker=ExternalJobInvoker(settings.invokable_functions, settings.stack_functions),
                ),
                checks=HeartbeatChecks(settings.worker_failure_queue_url, sqs),
                results=ResultStore(settings.results_bucket, s3) if settings.results_bucket else None,
                inline_limit_bytes=settings.result_inline_limit_bytes,
                result_upload_ttl_s=settings.result_upload_url_ttl_s,
                max_result_upload_bytes=settings.max_result_upload_bytes,
            ),
            endpoints=endpoint_admin(settings, dynamodb, sqs, resolve_host),
            registry=registry or with_user_jobs(settings.job_modules, job_entry_points),
            resolve_host=resolve_host,
        )


def endpoint_admin(settings: Settings, dynamodb: Any, sqs: Any, resolve_host: HostLookup) -> EndpointAdmin:
    def check_url(url: str) -> str:
        return check_callback_url(url, allow_loopback=settings.allow_loopback_callbacks, resolve=resolve_host)

    return EndpointAdmin(
        endpoints=EndpointStore(settings.endpoints_table, dynamodb),
        secrets=EndpointSecrets(settings.endpoint_secrets_table, dynamodb),
        log=EndpointDeliveryLog(settings.endpoints_table, dynamodb),
        queue=RetryQueue(settings.webhook_retry_queue_url, settings.webhook_dlq_url, client=sqs),
        check_url=check_url,
        sender=WebhookSender(
            timeout_s=min(settings.webhook_timeout_s, TEST_EVENT_TIMEOUT_CAP_S),
            allow_loopback=settings.allow_loopback_callbacks,
            resolve=resolve_host,
        ),
        max_endpoints=settings.endpoints_per_tenant,
        replay_rate=settings.endpoint_replay_rate,
        secret_overlap_s=settings.endpoint_secret_overlap_s,
        test_interval_s=settings.endpoint_test_interval_s,
    )
