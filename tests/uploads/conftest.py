"""Fixtures for the large-payload path against moto: the payloads bucket, the upload events queue,
the REST handler with its S3 and SQS clients, the worker that reads uploads and stores large results,
and the upload events handler — all driven in this process, workers run on demand."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from handlers import upload_arrived, worker
from taskcast.jobs.uploaded import UploadReader
from taskcast.presign import presigning_client
from taskcast.results import ResultStore
from taskcast.settings import Settings
from taskcast.store import TaskStore
from taskcast.upload_arrivals import UploadEventDeps
from taskcast.upload_queue import DeadlineQueue
from taskcast.uploads import UploadStore
from tests.functional.rest_harness import FIXTURES, FakeLambdaContext, Reply, RestHarness

BUCKET = "taskcast-payloads"


@pytest.fixture
def upload_settings(dynamodb: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:  # noqa: ARG001
    """Settings with the payloads bucket and the upload events queue created in moto."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    queue_url = boto3.client("sqs").create_queue(QueueName="taskcast-upload-events")["QueueUrl"]
    monkeypatch.setenv("PAYLOADS_BUCKET", BUCKET)
    monkeypatch.setenv("UPLOAD_EVENTS_QUEUE_URL", queue_url)
    return Settings.from_env()


class UploadHarness(RestHarness):
    """The REST harness whose worker reads uploads and stores large results, started on demand."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, start_workers=False)
        self.s3 = presigning_client()
        self.sqs = boto3.client("sqs")
        self.deps.s3 = self.s3
        self.deps.deadlines = DeadlineQueue(settings.upload_events_queue_url, self.sqs)
        self.uploads = UploadStore(settings.tasks_table, self.dynamodb)
        self.worker_deps.uploads = UploadReader(self.uploads, self.s3, settings.results_bucket)
        self.worker_deps.results = ResultStore(settings.results_bucket, self.s3)
        self.event_deps = UploadEventDeps(
            settings=settings,
            store=TaskStore(settings.tasks_table, self.dynamodb),
            uploads=self.uploads,
            s3=self.s3,
            invoke_worker=self.invoke_worker,
            deadlines=self.deps.deadlines,
        )

    def run_worker(self, task_id: str) -> dict[str, Any]:
        return worker.lambda_handler({"task_id": task_id}, FakeLambdaContext("taskcast-worker"), deps=self.worker_deps)

    def run_invoked_workers(self) -> list[str]:
        started, self.invocations = list(self.invocations), []
        for task_id in started:
            self.run_worker(task_id)
        return started

    def declare(self, content_type: str = "text/plain", size: int | None = None, task: dict | None = None,
                tenant: str = "acme") -> Reply:
        body: dict[str, Any] = {"content_type": content_type}
        if size is not None:
            body["size"] = size
        if task is not None:
            body["task"] = task
        return self.request("POST", "/uploads", json_body=body, tenant=tenant)

    def put_object(self, answer: dict[str, Any], data: bytes, content_type: str | None = None) -> None:
        """What the client's PUT leaves in the bucket (moto does not check presigned conditions)."""
        upload = self.uploads.get(answer["upload_id"])
        assert upload is not None
        self.s3.put_object(Bucket=BUCKET, Key=upload.key, Body=data, ContentType=content_type or upload.content_type)

    def deliver(self, *bodies: str) -> dict[str, Any]:
        """The upload events handler's answer to one SQS batch carrying ``bodies``."""
        template = json.loads((FIXTURES / "sqs.json").read_text())["Records"][0]
        records = []
        for index, body in enumerate(bodies):
            record = copy.deepcopy(template)
            record.update(messageId=f"m-{index}", body=body, eventSourceARN="arn:aws:sqs:us-east-1:123456789012:q")
            records.append(record)
        return upload_arrived.lambda_handler({"Records": records}, FakeLambdaContext(), deps=self.event_deps)

    def queued_messages(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=self.settings.upload_events_queue_url, MaxNumberOfMessages=10,
                                          AttributeNames=["All"])
        return [json.loads(message["Body"]) for message in answer.get("Messages", [])]


def s3_event(key: str, size: int, bucket: str = BUCKET, event_name: str = "ObjectCreated:Put") -> str:
    """An S3 event notification as S3 sends it to SQS (the key URL-encoded the way forms are)."""
    from urllib.parse import quote_plus

    record = {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z", "eventName": event_name,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "uploads",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": "0"}},
    }
    return json.dumps({"Records": [record]})


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def harness(upload_settings: Settings) -> Iterator[UploadHarness]:
    with UploadHarness(upload_settings) as running:
        yield running


@pytest.fixture
def clock(harness: UploadHarness) -> Clock:
    """The wall clock of the REST handler and the events handler, moved by the test."""
    fixed = Clock(time.time())
    harness.deps.wall_clock = fixed
    harness.event_deps.clock = fixed
    return fixed
