"""The stream and queue pollers against moto's server (the child process the local stack runs):
a restarted stream poller resumes after its checkpoint, and SQS batches are deleted as Lambda does."""

from __future__ import annotations

import queue
import threading
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


def _versioned_table(dynamodb: Any, name: str) -> str:
    table = dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]
    return str(table["LatestStreamArn"])


def _put_version(dynamodb: Any, table: str, key: str, version: int) -> None:
    # The range key varies too: lanes follow the partition key alone, as Lambda's do.
    dynamodb.put_item(TableName=table, Item={"pk": {"S": key}, "sk": {"S": f"v{version}"},
                                             "version": {"N": str(version)}})


def _keys_in_different_lanes(lanes: int) -> tuple[str, str]:
    from taskcast.local.event_sources import lane_of

    first = "task-0"
    candidates = (f"task-{n}" for n in range(1, 100))
    other = next(key for key in candidates if lane_of({"S": key}, lanes) != lane_of({"S": first}, lanes))
    return first, other


def test_parallelization_lanes_run_concurrently_and_keep_each_keys_order(moto_url: str, tmp_path: Path) -> None:
    """ParallelizationFactor 3: records of different keys are invoked at once (a lane waiting for another
    lane's key is released), every key's records arrive once each, in order."""
    dynamodb = _client("dynamodb", moto_url)
    stream_arn = _versioned_table(dynamodb, "lanes")
    slow, fast = _keys_in_different_lanes(3)
    keys = [slow, fast, *(f"other-{n}" for n in range(4))]
    for version in range(1, 6):
        for key in keys:
            _put_version(dynamodb, "lanes", key, version)
    batches: queue.Queue[list[dict[str, Any]]] = queue.Queue()
    fast_handled = threading.Event()
    slow_waited: list[bool] = []

    def hold_slow_until_fast(event: dict[str, Any]) -> None:
        seen = {record["dynamodb"]["Keys"]["pk"]["S"] for record in event["Records"]}
        if slow in seen and not slow_waited:
            slow_waited.append(fast_handled.wait(timeout=5))
        if fast in seen:
            fast_handled.set()

    mapping = StreamMapping(_recording_function(batches, hold_slow_until_fast), stream_arn, batch_size=2,
                            parallelization=3)
    poller = StreamPoller(mapping, _client("dynamodbstreams", moto_url), CheckpointStore(tmp_path / "p.json"),
                          lambda *_: None, poll_interval_s=0.02)
    poller.start()
    try:
        delivered: list[dict[str, Any]] = []
        while len(delivered) < len(keys) * 5:
            delivered += batches.get(timeout=15)
    finally:
        poller.stop()
    assert slow_waited == [True], "the slow key's lane blocked the other lanes"
    for key in keys:
        versions = [int(record["dynamodb"]["NewImage"]["version"]["N"]) for record in delivered
                    if record["dynamodb"]["Keys"]["pk"]["S"] == key]
        assert versions == [1, 2, 3, 4, 5], key


def lane_key(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["Keys"]["pk"]["S"])


def test_a_failing_lane_retries_only_its_own_records_in_order(moto_url: str, tmp_path: Path) -> None:
    dynamodb = _client("dynamodb", moto_url)
    stream_arn = _versioned_table(dynamodb, "failing-lane")
    failing, healthy = _keys_in_different_lanes(2)
    for version in range(1, 4):
        for key in (failing, healthy):
            _put_version(dynamodb, "failing-lane", key, version)
    batches: queue.Queue[list[dict[str, Any]]] = queue.Queue()
    failures_left = [2]

    def fail_version_two_twice(event: dict[str, Any]) -> dict[str, Any]:
        for record in event["Records"]:
            if lane_key(record) == failing and record["dynamodb"]["NewImage"]["version"]["N"] == "2" \
                    and failures_left[0] > 0:
                failures_left[0] -= 1
                return {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
        return {"batchItemFailures": []}

    mapping = StreamMapping(_recording_function(batches, fail_version_two_twice), stream_arn, batch_size=10,
                            parallelization=2, report_item_failures=True)
    poller = StreamPoller(mapping, _client("dynamodbstreams", moto_url), CheckpointStore(tmp_path / "p.json"),
                          lambda *_: None, poll_interval_s=0.02, retry_backoff_s=(0.01, 0.05))
    poller.start()
    try:
        delivered: list[dict[str, Any]] = []
        while len(delivered) < 3 + 3 + 2 * 2:  # the failing key's versions 2 and 3 come twice more
            delivered += batches.get(timeout=15)
    finally:
        poller.stop()

    def versions(key: str) -> list[int]:
        return [int(record["dynamodb"]["NewImage"]["version"]["N"]) for record in delivered if lane_key(record) == key]

    assert versions(healthy) == [1, 2, 3]  # never redelivered for the other lane's failure
    assert versions(failing) == [1, 2, 3, 2, 3, 2, 3]
    assert batches.empty()


def test_the_template_parallelization_factor_is_read() -> None:
    from taskcast.local.event_sources import _stream_mapping

    function = _recording_function(queue.Queue())
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x"
    assert _stream_mapping(function, {"ParallelizationFactor": 4}, arn).parallelization == 4
    assert _stream_mapping(function, {}, arn).parallelization == 1
