"""How external jobs reach their workers (the jobs queue, an EventBridge event or an asynchronous invoke of the
user's function) and the heartbeat checks, sent delayed to the worker failure queue (whose consumer ends tasks
whose worker is gone)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from taskcast import aws
from taskcast.heartbeats import HeartbeatCheck, delay_seconds
from taskcast.jobs.invokable import invoke_target
from taskcast.jobs.registry import ExternalJob
from taskcast.models import Task


class QueueNotConfigured(RuntimeError):
    pass


def job_message(task: Task, token: str) -> dict[str, Any]:
    """What a worker receives: everything it needs to run the task and report on it."""
    return {
        "task_id": task.id,
        "type": task.type,
        "input": task.input,
        "token": token,
        "heartbeat_s": task.heartbeat_s,
        "created_at": task.created_at,
    }


class ExternalJobsQueue:
    def __init__(self, queue_url: str, sqs: Any = None) -> None:
        self.queue_url = queue_url
        self.sqs = sqs or aws.client("sqs")

    def send(self, task: Task, token: str) -> None:
        if not self.queue_url:
            raise QueueNotConfigured("EXTERNAL_JOBS_QUEUE_URL is not set")
        # The job type as an attribute lets a worker fleet of one type filter without parsing the body.
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps(job_message(task, token)),
            MessageAttributes={"type": {"DataType": "String", "StringValue": task.type}},
        )


class ExternalJobEvents:
    """The hand-off as an EventBridge event (``Source`` ``taskcast``, ``DetailType`` ``taskcast.external-job``,
    the job message as ``Detail``) on the deployment's bus: the user's rules route it to any target."""

    SOURCE = "taskcast"
    DETAIL_TYPE = "taskcast.external-job"

    def __init__(self, bus_name: str, events: Any = None) -> None:
        self.bus_name = bus_name
        self._events = events

    @property
    def events(self) -> Any:
        # Made on first use: most deployments never hand off through EventBridge, and a client costs the
        # REST function's cold start tens of milliseconds.
        if self._events is None:
            self._events = aws.client("events")
        return self._events

    def send(self, task: Task, token: str) -> None:
        answer = self.events.put_events(Entries=[{
            "Source": self.SOURCE,
            "DetailType": self.DETAIL_TYPE,
            "Detail": json.dumps(job_message(task, token)),
            "EventBusName": self.bus_name,
        }])
        if answer.get("FailedEntryCount"):
            # PutEvents answers 200 with the entry refused: the hand-off did not happen.
            raise HandoffRefused(str((answer.get("Entries") or [{}])[0].get("ErrorCode", "refused")))


class ExternalJobInvoker:
    """The hand-off as an asynchronous invoke of the user's worker function, the job message as its event.

    Only functions of the deployment's allow-list (``InvokableFunctions``, which also grants the REST function
    ``lambda:InvokeFunction`` on them) and never the stack's own."""

    def __init__(self, allowed: Sequence[str], own: Collection[str], client: Any = None) -> None:
        self.allowed, self.own = allowed, own
        self.client = client or aws.client("lambda")

    def send(self, task: Task, token: str, function: str) -> None:
        target = invoke_target(function, self.allowed, self.own)
        if target is None:
            raise HandoffRefused(f"function {function!r} is not in the deployment's InvokableFunctions")
        self.client.invoke(
            FunctionName=target, InvocationType="Event", Payload=json.dumps(job_message(task, token)).encode()
        )


class HandoffRefused(RuntimeError):
    """The channel refused the hand-off (not a network failure): the task cannot reach its worker."""


@dataclass
class Handoffs:
    """Every way a task reaches its external worker; each job's declaration picks one (``ExternalJob.handoff``)."""

    queue: ExternalJobsQueue
    events: ExternalJobEvents
    invoker: ExternalJobInvoker

    def send(self, external: ExternalJob, task: Task, token: str) -> None:
        if external.handoff == "eventbridge":
            self.events.send(task, token)
        elif external.handoff == "lambda":
            self.invoker.send(task, token, str(external.function))
        else:
            self.queue.send(task, token)


class HeartbeatChecks:
    def __init__(self, queue_url: str, sqs: Any = None) -> None:
        self.queue_url = queue_url
        self.sqs = sqs or aws.client("sqs")

    def send(self, check: HeartbeatCheck, now: float) -> None:
        if not self.queue_url:
            raise QueueNotConfigured("WORKER_FAILURE_QUEUE_URL is not set")
        self.sqs.send_message(
            QueueUrl=self.queue_url, MessageBody=check.to_json(), DelaySeconds=delay_seconds(check.not_before, now)
        )
