"""The two queues of external jobs: the jobs queue, where users' workers receive their tasks, and the heartbeat
checks, sent delayed to the worker failure queue (whose consumer ends tasks whose worker is gone)."""

from __future__ import annotations

import json
from typing import Any

from taskcast import aws
from taskcast.heartbeats import HeartbeatCheck, delay_seconds
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
