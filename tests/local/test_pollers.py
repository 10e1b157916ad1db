"""The stream and queue pollers against moto's server (the child process the local stack runs):
a restarted stream poller resumes after its checkpoint, and SQS batches are deleted as Lambda does."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from taskcast.local.checkpoints import CheckpointStore
from taskcast.local.event_sources import QueueMapping, QueuePoller, StreamMapping, StreamPoller
from taskcast.local.functions import LocalFunction
from taskcast.local.services import MotoService


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    service = MotoService()
    service.start()
    try:
        yield service.url
    finally:
        service.stop()


def _client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _recording_function(batches: queue.Queue[list[dict[str, Any]]], answer: Any = None) -> LocalFunction:
    function = LocalFunction("Probe", "probe", "arn:aws:lambda:us-east-1:123456789012:function:probe", "x.y")

    def handler(event: dict[str, Any], context: Any) -> Any:
        batches.put(event["Records"])
        return answer(event) if callable(answer) else answer

    function._handler = handler
    return function


def _keys(batches: queue.Queue[list[dict[str, Any]]], count: int) -> list[str]:
    keys: list[str] = []
    while len(keys) < count:
        keys += [record["dynamodb"]["Keys"]["pk"]["S"] for record in batches.get(timeout=15)]
    return keys


def test_a_restarted_stream_poller_resumes_after_its_checkpoint(moto_url: str, tmp_path: Path) -> None:
    dynamodb = _client("dynamodb", moto_url)
    table = dynamodb.create_table(
        TableName="resume", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    batches: queue.Queue[list[dict[str, Any]]] = queue.Queue()
    mapping = StreamMapping(_recording_function(batches), table["LatestStreamArn"], batch_size=2)

    def run_poller(checkpoints: CheckpointStore) -> StreamPoller:
        poller = StreamPoller(mapping, _client("dynamodbstreams", moto_url), checkpoints, lambda *_: None,
                              poll_interval_s=0.02)
        poller.start()
        return poller

    for key in ("a", "b", "c"):
        dynamodb.put_item(TableName="resume", Item={"pk": {"S": key}})
    first = run_poller(CheckpointStore(tmp_path / "positions.json"))
    assert _keys(batches, 3) == ["a", "b", "c"]
    first.stop()

    for key in ("d", "e"):
        dynamodb.put_item(TableName="resume", Item={"pk": {"S": key}})
    restarted = run_poller(CheckpointStore(tmp_path / "positions.json"))  # read back as a new process would
    try:
        assert _keys(batches, 2) == ["d", "e"]  # nothing replayed, nothing skipped
    finally:
        restarted.stop()
    assert batches.empty()


def test_an_sqs_batch_is_deleted_except_the_reported_failures(moto_url: str) -> None:
    sqs = _client("sqs", moto_url)
    url = sqs.create_queue(QueueName="poller-probe", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for body in ("keep", "drop"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    batches: queue.Queue[list[dict[str, Any]]] = queue.Queue()

    def report_drop(event: dict[str, Any]) -> dict[str, Any]:
        failed = [record["messageId"] for record in event["Records"] if record["body"] == "drop"]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    mapping = QueueMapping(_recording_function(batches, report_drop), arn, url, batch_size=10,
                           report_item_failures=True)
    poller = QueuePoller(mapping, sqs, wait_s=1)
    received = 0
    while received < 2:
        received += poller.poll_once()

    delivered = [record for batch in list(batches.queue) for record in batch]
    assert sorted(record["body"] for record in delivered) == ["drop", "keep"]
    assert all(record["eventSourceARN"] == arn and record["eventSource"] == "aws:sqs" for record in delivered)
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # "keep" was deleted; "drop" waits out its visibility timeout.
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "1")


def test_an_sqs_mapping_runs_at_most_its_maximum_concurrency_of_pollers() -> None:
    from taskcast.local.event_sources import _queue_mapping

    function = _recording_function(queue.Queue())
    arn = "arn:aws:sqs:us-east-1:123456789012:deliveries"
    properties = {"Queue": arn, "BatchSize": 10, "ScalingConfig": {"MaximumConcurrency": 2}}
    mapping = _queue_mapping(function, properties, arn, {arn: "http://127.0.0.1:1/deliveries"})

    assert mapping is not None and mapping.max_concurrency == 2
    assert QueuePoller(mapping, sqs_client=None, concurrency=6).concurrency == 2
    unscaled = _queue_mapping(function, {"Queue": arn}, arn, {arn: "http://127.0.0.1:1/deliveries"})
    assert unscaled is not None and QueuePoller(unscaled, sqs_client=None, concurrency=6).concurrency == 6
