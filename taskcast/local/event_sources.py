"""Lambda event source mappings from the template: pollers for DynamoDB streams and SQS queues.

Read from each function's ``Events`` of ``Type: DynamoDB`` / ``Type: SQS`` (and from
``AWS::Lambda::EventSourceMapping`` resources).

DynamoDB streams — one poller thread per mapping:
- ``get_records`` every ``poll_interval_s`` while the shard is idle (default 50 ms, so that push
  latency is not dominated by polling), at most ``BatchSize`` records per invocation, gathered for up
  to ``MaximumBatchingWindowInSeconds``; records are in the Lambda event shape (``eventSourceARN``,
  ``awsRegion``, ``dynamodb.ApproximateCreationDateTime`` as epoch seconds, ``SequenceNumber``…);
- ``FilterCriteria``: records that match no filter are skipped (and count as processed);
- ``ParallelizationFactor`` P > 1: up to P × ``BatchSize`` records are read at once and split into P
  lanes by a hash of their partition key (the table's ``HASH`` key, from ``describe_stream``), as Lambda
  does; each lane is invoked on its own, concurrently, in stream order within the lane, so records of
  one key keep their order. The shard's checkpoint moves past the read once every lane has finished
  (a lane that is still retrying holds the next read, where Lambda's lanes would move on independently);
- on a function error: ``BisectBatchOnFunctionError`` splits the batch in two and retries each half;
  otherwise the batch is retried, up to ``MaximumRetryAttempts`` (-1: until it succeeds), then the
  ``OnFailure`` destination gets Lambda's record (``DDBStreamBatchInfo``) and the shard moves on;
- ``ReportBatchItemFailures``: ``{"batchItemFailures": [{"itemIdentifier": <SequenceNumber>}]}`` retries
  from the first failed record; the ones before it are done and never redelivered. The retries are
  counted from the checkpoint: a partial success that moves it starts the count again, so
  ``MaximumRetryAttempts`` bounds how often one record fails, not how many invocations a batch with
  several failing records takes;
- the last finished sequence number of each shard is kept in a ``CheckpointStore``, so a restarted
  poller resumes after it.

SQS queues — ``concurrency`` poller threads per mapping (long polls of ``wait_s``; never more than the
mapping's ``ScalingConfig.MaximumConcurrency``, since each poller runs one invocation at a time):
- up to ``BatchSize`` messages per invocation (10 per receive), in the Lambda SQS record shape;
- success deletes the batch; ``ReportBatchItemFailures`` deletes all but the reported ``messageId``s;
  a function error deletes nothing: failed messages come back after the queue's visibility timeout,
  and moto's redrive policy moves them to the dead-letter queue after ``maxReceiveCount``;
- messages that match no filter are deleted, as Lambda does.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskcast.local.checkpoints import CheckpointStore
from taskcast.local.filters import parse_filters, record_passes, sqs_view
from taskcast.local.functions import FunctionRegistry, Invocation, LocalFunction
from taskcast.local.resolve import TemplateResolver
from taskcast.local.template import resources_of_type

log = logging.getLogger("taskcast.local")
SendToDestination = Callable[[str, dict[str, Any]], None]


# ---------------------------------------------------------------------------------------------- mappings
@dataclass(frozen=True)
class StreamMapping:
    function: LocalFunction
    stream_arn: str
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = 100
    batching_window_s: float = 0.0
    max_retries: int = -1
    bisect: bool = False
    report_item_failures: bool = False
    on_failure: str | None = None
    filters: list[dict[str, Any]] = field(default_factory=list)
    enabled: bool = True
    parallelization: int = 1  # ParallelizationFactor: concurrent invocations per shard, one per key lane


@dataclass(frozen=True)
class QueueMapping:
    function: LocalFunction
    queue_arn: str
    queue_url: str
    batch_size: int = 10
    batching_window_s: float = 0.0
    report_item_failures: bool = False
    filters: list[dict[str, Any]] = field(default_factory=list)
    enabled: bool = True
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency: at most this many invocations at once


def _common(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "batching_window_s": float(properties.get("MaximumBatchingWindowInSeconds", 0)),
        "report_item_failures": "ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or []),
        "filters": parse_filters(properties.get("FilterCriteria")),
        "enabled": bool(properties.get("Enabled", True)),
    }


def _stream_mapping(function: LocalFunction, properties: dict[str, Any], stream_arn: str) -> StreamMapping:
    destination = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    return StreamMapping(
        function=function,
        stream_arn=stream_arn,
        starting_position=str(properties.get("StartingPosition", "TRIM_HORIZON")),
        batch_size=int(properties.get("BatchSize", 100)),
        max_retries=int(properties.get("MaximumRetryAttempts", -1)),
        bisect=bool(properties.get("BisectBatchOnFunctionError", False)),
        on_failure=destination,
        parallelization=max(1, min(10, int(properties.get("ParallelizationFactor", 1)))),
        **_common(properties),
    )


def _queue_mapping(function: LocalFunction, properties: dict[str, Any], queue_arn: str,
                   queue_urls: dict[str, str]) -> QueueMapping | None:
    url = queue_urls.get(queue_arn)
    if url is None:
        log.warning("%s: queue %s is not declared in the template; mapping ignored", function.name, queue_arn)
        return None
    scaling = (properties.get("ScalingConfig") or {}).get("MaximumConcurrency")
    return QueueMapping(function, queue_arn, url, batch_size=int(properties.get("BatchSize", 10)),
                        max_concurrency=int(scaling) if scaling is not None else None, **_common(properties))


def event_source_mappings(
    resolver: TemplateResolver, functions: FunctionRegistry, queue_urls: dict[str, str]
) -> tuple[list[StreamMapping], list[QueueMapping]]:
    """The template's stream and queue mappings; ``queue_urls`` maps queue ARNs to their local URLs."""
    streams: list[StreamMapping] = []
    queues: list[QueueMapping] = []
    for function in functions:
        for event in function.events.values():
            properties = event.get("Properties") or {}
            if event.get("Type") == "DynamoDB":
                streams.append(_stream_mapping(function, properties, str(properties["Stream"])))
            elif event.get("Type") == "SQS":
                mapping = _queue_mapping(function, properties, str(properties["Queue"]), queue_urls)
                if mapping:
                    queues.append(mapping)
    for logical_id in resources_of_type(resolver.template, "AWS::Lambda::EventSourceMapping"):
        properties = resolver.properties(logical_id)
        function = functions.find(str(properties.get("FunctionName", "")))
        source = str(properties.get("EventSourceArn", ""))
        if function is None:
            continue
        if source.startswith("arn:aws:dynamodb:"):
            streams.append(_stream_mapping(function, properties, source))
        elif source.startswith("arn:aws:sqs:"):
            mapping = _queue_mapping(function, properties, source, queue_urls)
            if mapping:
                queues.append(mapping)
    return streams, queues


# ---------------------------------------------------------------------------------------------- records
def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def stream_record(raw: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A ``get_records`` record → the record Lambda hands a function."""
    dynamodb = dict(raw.get("dynamodb") or {})
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = float(int(created.timestamp()))
    return {
        "eventID": raw.get("eventID"),
        "eventName": raw.get("eventName"),
        "eventVersion": raw.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": _json_safe(dynamodb),
        "eventSourceARN": stream_arn,
    }


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ``receive_message`` message → the record Lambda hands a function."""
    attributes = {key: str(value) for key, value in (message.get("Attributes") or {}).items()}
    message_attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        converted: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
        if "StringValue" in value:
            converted["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            converted["binaryValue"] = _json_safe(value["BinaryValue"])
        message_attributes[name] = converted
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def lane_of(key: Any, lanes: int) -> int:
    """The lane (0..lanes-1) of a record whose partition key is ``key`` (its stream ``Keys`` entry):
    stable across processes, so one key always lands in the same lane."""
    return zlib.crc32(json.dumps(key, sort_keys=True).encode()) % lanes


def split_into_lanes(records: list[dict[str, Any]], lanes: int, hash_key: str | None) -> list[list[dict[str, Any]]]:
    """``records`` split by partition key into ``lanes`` lists, each in stream order (empty lanes dropped)."""
    split: list[list[dict[str, Any]]] = [[] for _ in range(lanes)]
    for record in records:
        keys = record["dynamodb"].get("Keys") or {}
        split[lane_of(keys.get(hash_key) if hash_key else keys, lanes)].append(record)
    return [lane for lane in split if lane]


class _AllFailed(Exception):
    pass


def failed_identifiers(invocation: Invocation, identifiers: list[str]) -> set[str]:
    """The records a batch response reports as failed (all of them on an error or an invalid answer)."""
    if invocation.failed:
        return set(identifiers)
    payload = invocation.payload
    if not isinstance(payload, dict) or not payload.get("batchItemFailures"):
        return set()  # null, {} or an empty list: complete success
    failures = payload["batchItemFailures"]
    try:
        if not isinstance(failures, list):
            raise _AllFailed
        reported = set()
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not isinstance(identifier, str) or identifier not in identifiers:
                raise _AllFailed  # Lambda treats a malformed or unknown identifier as a failed batch
            reported.add(identifier)
        return reported
    except _AllFailed:
        return set(identifiers)


# ---------------------------------------------------------------------------------------------- pollers
class _Poller:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def _start_thread(self, target: Callable[[], None], suffix: str = "") -> None:
        thread = threading.Thread(target=self._guarded, args=(target,), name=f"{self.name}{suffix}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guarded(self, target: Callable[[], None]) -> None:
        while not self.stopping.is_set():
            try:
                target()
            except Exception:  # noqa: BLE001 - a poller logs and carries on; it never takes the stack down
                if self.stopping.is_set():
                    return
                log.exception("%s: poller error; retrying in 1 s", self.name)
                self.stopping.wait(1.0)

    def stop(self, timeout_s: float = 3.0) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class StreamPoller(_Poller):
    def __init__(
        self,
        mapping: StreamMapping,
        streams_client: Any,
        checkpoints: CheckpointStore,
        send_to_destination: SendToDestination,
        region: str = "us-east-1",
        poll_interval_s: float = 0.05,
        retry_backoff_s: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        super().__init__(f"stream:{mapping.function.name}")
        self.mapping = mapping
        self.client = streams_client
        self.checkpoints = checkpoints
        self.send_to_destination = send_to_destination
        self.region = region
        self.poll_interval_s = poll_interval_s
        self.retry_backoff_s = retry_backoff_s
        self._iterators: dict[str, str] = {}
        self._hash_key: str | None = None
        self._lanes: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self.mapping.parallelization > 1:
            self._lanes = ThreadPoolExecutor(self.mapping.parallelization, thread_name_prefix=f"{self.name}-lane")
        self._start_thread(self._poll_forever)

    def stop(self, timeout_s: float = 3.0) -> None:
        super().stop(timeout_s)
        if self._lanes is not None:
            self._lanes.shutdown(wait=False, cancel_futures=True)

    # -- the loop
    def _poll_forever(self) -> None:
        self._iterators = {}
        while not self.stopping.is_set():
            busy = False
            for shard_id in self._shards():
                busy = self._poll_shard(shard_id) or busy
            if not busy:
                self.stopping.wait(self.poll_interval_s)

    def _shards(self) -> list[str]:
        if not self._iterators:
            description = self.client.describe_stream(StreamArn=self.mapping.stream_arn)["StreamDescription"]
            self._hash_key = next((key["AttributeName"] for key in description.get("KeySchema") or []
                                   if key.get("KeyType") == "HASH"), None)
            for shard in description.get("Shards") or []:
                self._iterators[shard["ShardId"]] = self._iterator_for(shard["ShardId"])
        return list(self._iterators)

    def _iterator_for(self, shard_id: str) -> str:
        position = self.checkpoints.get(self.mapping.stream_arn, shard_id)
        arguments: dict[str, Any] = {"StreamArn": self.mapping.stream_arn, "ShardId": shard_id}
        if position is not None:
            arguments.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=position)
        else:
            arguments["ShardIteratorType"] = self.mapping.starting_position
        return self.client.get_shard_iterator(**arguments)["ShardIterator"]

    @property
    def _read_size(self) -> int:
        # P lanes of up to BatchSize each; GetRecords returns at most 1,000 records.
        return min(1000, self.mapping.batch_size * self.mapping.parallelization)

    def _fetch(self, shard_id: str) -> list[dict[str, Any]]:
        answer = self.client.get_records(ShardIterator=self._iterators[shard_id], Limit=self._read_size)
        if answer.get("NextShardIterator"):
            self._iterators[shard_id] = answer["NextShardIterator"]
        return answer.get("Records") or []

    def _poll_shard(self, shard_id: str) -> bool:
        raw = self._fetch(shard_id)
        if not raw:
            return False
        window_ends = time.monotonic() + self.mapping.batching_window_s
        while len(raw) < self._read_size and time.monotonic() < window_ends and not self.stopping.is_set():
            more = self._fetch(shard_id)
            raw.extend(more)
            if not more:
                self.stopping.wait(min(self.poll_interval_s, max(0.0, window_ends - time.monotonic())))
        records = [stream_record(item, self.mapping.stream_arn, self.region) for item in raw]
        passing = [record for record in records if record_passes(self.mapping.filters, record)]
        if not passing or self._deliver_read(shard_id, passing):
            self._checkpoint(shard_id, records[-1])
        return True

    def _deliver_read(self, shard_id: str, records: list[dict[str, Any]]) -> bool:
        if self._lanes is None:
            return self._deliver(shard_id, records)
        lanes = split_into_lanes(records, self.mapping.parallelization, self._hash_key)
        running = [self._lanes.submit(self._deliver_lane, shard_id, lane) for lane in lanes]
        return all([future.result() for future in running])

    def _deliver_lane(self, shard_id: str, lane: list[dict[str, Any]]) -> bool:
        """One lane's records, a batch at a time, in order; a lane never checkpoints part of a read
        (the other lanes' records before that point may not be done yet)."""
        size = self.mapping.batch_size
        return all(self._deliver(shard_id, lane[start : start + size], partial_checkpoints=False)
                   for start in range(0, len(lane), size))

    # -- delivery with retries
    def _checkpoint(self, shard_id: str, record: dict[str, Any]) -> None:
        self.checkpoints.put(self.mapping.stream_arn, shard_id, record["dynamodb"]["SequenceNumber"])

    def _deliver(self, shard_id: str, batch: list[dict[str, Any]], partial_checkpoints: bool = True) -> bool:
        """Deliver ``batch`` until it succeeds or exhausts its retries (bisecting if asked); False
        when the poller stops first, leaving records undelivered (they come again after a restart)."""
        pending = batch
        invocations = 0
        head_failures = 0  # invocations in which the batch's first record (the checkpoint) failed
        while pending and not self.stopping.is_set():
            invocation = self.mapping.function.invoke({"Records": pending})
            invocations += 1
            if invocation.failed and self.mapping.bisect and len(pending) > 1:
                middle = len(pending) // 2
                log.info("%s: batch of %d failed; bisecting", self.name, len(pending))
                return (self._deliver(shard_id, pending[:middle], partial_checkpoints)
                        and self._deliver(shard_id, pending[middle:], partial_checkpoints))
            sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in pending]
            if invocation.failed:
                failed = set(sequence_numbers)
            elif self.mapping.report_item_failures:
                failed = failed_identifiers(invocation, sequence_numbers)
            else:
                failed = set()
            if not failed:
                return True
            first = min(sequence_numbers.index(number) for number in failed)
            if first > 0:
                # A partial success moves the checkpoint: the retries count again from the new first
                # record, which has failed once so far.
                if partial_checkpoints:
                    self._checkpoint(shard_id, pending[first - 1])
                pending = pending[first:]
                head_failures = 1
            else:
                head_failures += 1
            if 0 <= self.mapping.max_retries < head_failures:
                self._discard(shard_id, pending, invocation, invocations)
                return True
            low, high = self.retry_backoff_s
            self.stopping.wait(min(high, low * 2 ** (head_failures - 1)))
        return not pending

    def _discard(self, shard_id: str, records: list[dict[str, Any]], invocation: Invocation, invocations: int) -> None:
        log.error("%s: %d records dropped after %d invocations", self.name, len(records), invocations)
        if not self.mapping.on_failure:
            return
        record = stream_failure_record(self.mapping, shard_id, records, invocation, invocations)
        try:
            self.send_to_destination(self.mapping.on_failure, record)
        except Exception:  # noqa: BLE001
            log.exception("%s: could not send the failure record to %s", self.name, self.mapping.on_failure)


def _arrival(record: dict[str, Any]) -> str:
    created = record["dynamodb"].get("ApproximateCreationDateTime") or 0
    return datetime.fromtimestamp(float(created), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def stream_failure_record(mapping: StreamMapping, shard_id: str, records: list[dict[str, Any]],
                          invocation: Invocation, invocations: int) -> dict[str, Any]:
    """The on-failure destination record of a stream batch whose retries are exhausted."""
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if invocation.failed:
        response["functionError"] = "Unhandled"
    return {
        "requestContext": {
            "requestId": invocation.request_id,
            "functionArn": mapping.function.arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invocations,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _arrival(records[0]),
            "approximateArrivalOfLastRecord": _arrival(records[-1]),
            "batchSize": len(records),
            "streamArn": mapping.stream_arn,
        },
    }


class QueuePoller(_Poller):
    def __init__(self, mapping: QueueMapping, sqs_client: Any, region: str = "us-east-1", wait_s: int = 1,
                 concurrency: int = 2) -> None:
        super().__init__(f"sqs:{mapping.function.name}")
        self.mapping = mapping
        self.client = sqs_client
        self.region = region
        self.wait_s = wait_s
        self.concurrency = min(concurrency, mapping.max_concurrency or concurrency)

    def start(self) -> None:
        for index in range(self.concurrency):
            self._start_thread(self._poll_forever, f"-{index}")

    def _poll_forever(self) -> None:
        while not self.stopping.is_set():
            self.poll_once()

    def _receive(self, count: int, wait_s: int) -> list[dict[str, Any]]:
        answer = self.client.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return answer.get("Messages") or []

    def poll_once(self) -> int:
        """Receive one batch and hand it to the function; the number of messages received."""
        messages = self._receive(self.mapping.batch_size, self.wait_s)
        if not messages:
            return 0
        window_ends = time.monotonic() + self.mapping.batching_window_s
        while len(messages) < self.mapping.batch_size and time.monotonic() < window_ends:
            more = self._receive(self.mapping.batch_size - len(messages), 0)
            messages.extend(more)
            if not more:
                self.stopping.wait(0.05)
        records = [sqs_record(message, self.mapping.queue_arn, self.region) for message in messages]
        passing = [record for record in records if record_passes(self.mapping.filters, sqs_view(record))]
        done = [record for record in records if record not in passing]  # filtered out: deleted, as Lambda does
        if passing:
            invocation = self.mapping.function.invoke({"Records": passing}, request_id=str(uuid.uuid4()))
            identifiers = [record["messageId"] for record in passing]
            if invocation.failed:
                failed = set(identifiers)
            elif self.mapping.report_item_failures:
                failed = failed_identifiers(invocation, identifiers)
            else:
                failed = set()
            done.extend(record for record in passing if record["messageId"] not in failed)
        self._delete(done)
        return len(messages)

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            entries = [{"Id": str(index), "ReceiptHandle": record["receiptHandle"]}
                       for index, record in enumerate(chunk)]
            self.client.delete_message_batch(QueueUrl=self.mapping.queue_url, Entries=entries)
