"""Custom CloudWatch metrics: counted while an invocation runs, published as EMF lines when it ends.

Code that counts takes a ``MetricsSink`` (tests pass their own); handlers call ``flush()`` once per
invocation, in a ``finally``. Publishing goes through Powertools' EMF provider, so the namespace
(``POWERTOOLS_METRICS_NAMESPACE``), the ``service`` dimension (``POWERTOOLS_SERVICE_NAME``) and
``POWERTOOLS_METRICS_DISABLED`` mean what Powertools documents. A metrics failure is logged, never raised.

Dimensions stay low-cardinality and secret-free: a status or an outcome, never a tenant, task id or URL.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import cache
from typing import Protocol

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

logger = logging.getLogger(__name__)

# Stream consumer
STREAM_RECORDS = "StreamRecords"
STATUS_CHANGES = "StatusChanges"  # dimension Status
WEBSOCKET_POSTS = "WebSocketPosts"
GONE_CONNECTIONS = "GoneConnections"
WEBSOCKET_POST_RETRIES = "WebSocketPostRetries"
WEBSOCKET_POST_FAILURES = "WebSocketPostFailures"
# Webhooks (stream consumer and retry function)
WEBHOOK_ATTEMPTS = "WebhookAttempts"  # dimension Outcome
WEBHOOK_DEAD_LETTERED = "WebhookDeadLettered"
WEBHOOK_PUT_BACK = "WebhookPutBack"  # dimension Reason: a job put back on the queue unattempted
WEBHOOK_BREAKER_OPENED = "WebhookBreakerOpened"
# Worker, its failure destination, upload events
TASKS_FINISHED = "TasksFinished"  # dimension Status
WORKER_FAILURES_HANDLED = "WorkerFailuresHandled"  # dimension Cause
UPLOADS_ARRIVED = "UploadsArrived"
UPLOADS_EXPIRED = "UploadsExpired"

Dimensions = tuple[tuple[str, str], ...]

# Powertools prints a document and its newline in two writes: one flush at a time keeps one per line.
_publishing = threading.Lock()


class MetricsSink(Protocol):
    def count(self, name: str, value: float = 1, **dimensions: str) -> None: ...

    def flush(self) -> None: ...


class NullMetrics:
    """Counts nothing: for callers whose counts no handler would ever flush."""

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        return None

    def flush(self) -> None:
        return None


NO_METRICS = NullMetrics()


class Counters:
    """Thread-safe sums per (dimensions, metric name), taken out whole by ``drain``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[Dimensions, dict[str, float]] = {}

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        if not value:
            return
        key = tuple(sorted((dimension, str(label)) for dimension, label in dimensions.items()))
        with self._lock:
            group = self._sums.setdefault(key, {})
            group[name] = group.get(name, 0.0) + value

    def drain(self) -> dict[Dimensions, dict[str, float]]:
        with self._lock:
            sums, self._sums = self._sums, {}
        return sums


class EmfMetrics(Counters):
    """Counts published by ``flush`` as one EMF document per dimension set (EMF puts dimensions on the
    whole document), each metric as the sum over the invocation."""

    def __init__(self, namespace: str | None = None, service: str | None = None) -> None:
        super().__init__()
        self._namespace = namespace
        self._service = service

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        try:
            super().count(name, value, **dimensions)
        except Exception as error:  # noqa: BLE001 - a metric must never fail the work it counts
            logger.warning("metric not counted", extra={"metric": name, "error": type(error).__name__})

    def flush(self) -> None:
        sums = self.drain()
        try:
            namespace = self._namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
            if not sums or not namespace or is_metrics_disabled():
                return  # dropped: nothing counted, metrics not configured (tests, scripts) or turned off
            with _publishing:
                for dimensions, totals in sums.items():
                    self._publish(namespace, dimensions, totals)
        except Exception as error:  # noqa: BLE001 - losing metrics is better than failing the handler
            logger.warning("metrics not published", extra={"error": f"{type(error).__name__}: {error}"})

    def _publish(self, namespace: str, dimensions: Dimensions, totals: dict[str, float]) -> None:
        # A fresh, unshared provider per document: see default_metrics for why not Metrics().
        emf = EphemeralMetrics(namespace=namespace, service=self._service)
        for dimension, label in dimensions:
            emf.add_dimension(name=dimension, value=label)
        for name, total in totals.items():
            try:
                emf.add_metric(name=name, unit=MetricUnit.Count, value=total)
            except Exception as error:  # noqa: BLE001 - one bad metric must not cost the others
                logger.warning("metric not published", extra={"metric": name[:64], "error": type(error).__name__})
        if emf.metric_set:
            emf.flush_metrics()


@cache
def default_metrics() -> EmfMetrics:
    """The process-wide sink every handler flushes at the end of its invocation."""
    # Not Powertools' Metrics(): its one shared set per process is cleared by whichever concurrent local
    # invocation flushes; this sink is drained whole under a lock, so each count goes out exactly once.
    return EmfMetrics()
