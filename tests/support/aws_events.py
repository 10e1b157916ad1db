"""Lambda events in the shapes AWS delivers, built from real (moto) writes and queues.

- ``StreamReader`` reads the tasks table's DynamoDB stream with the ``dynamodbstreams`` client and
  turns its records into a DynamoDB Streams event (as the event source mapping would).
- ``SqsPump`` receives from a queue and turns the messages into an SQS event, deleting the ones the
  handler did not report as failed (``ReportBatchItemFailures``), as the event source mapping would.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import boto3

# boto3 now sends stream calls to account-scoped hostnames that moto's in-process mock does not route;
# the classic regional endpoint is the same API.
STREAMS_ENDPOINT = "https://streams.dynamodb.us-east-1.amazonaws.com"


class StreamReader:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self.table_name = table_name
        self.stream_arn = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        self.client = boto3.client("dynamodbstreams", endpoint_url=STREAMS_ENDPOINT)
        self._iterators: dict[str, str] = {}
        shards = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            self._iterators[shard["ShardId"]] = self.client.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]

    def records(self) -> list[dict[str, Any]]:
        """Every record written since the last call, as Lambda receives them."""
        records: list[dict[str, Any]] = []
        for shard_id, iterator in list(self._iterators.items()):
            answer = self.client.get_records(ShardIterator=iterator)
            self._iterators[shard_id] = answer["NextShardIterator"]
            records.extend(_as_lambda_record(record, self.stream_arn) for record in answer["Records"])
        return records

    def event(self) -> dict[str, Any]:
        return {"Records": self.records()}

    def state_event(self) -> dict[str, Any]:
        """Only the records the template's FilterCriteria lets through (INSERT/MODIFY of ``STATE``)."""
        return {"Records": [record for record in self.records() if passes_filter(record)]}


def passes_filter(record: dict[str, Any]) -> bool:
    return record["eventName"] in {"INSERT", "MODIFY"} and record["dynamodb"]["Keys"]["sk"]["S"] == "STATE"


def _as_lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    body = dict(record["dynamodb"])
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        body["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": body, "eventSourceARN": stream_arn}


class SqsPump:
    def __init__(self, queue_url: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self.client = client or boto3.client("sqs")
        self.queue_arn = self.client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def receive(self, wait_s: float = 0.0, max_messages: int = 10) -> list[dict[str, Any]]:
        answer = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=int(wait_s),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return answer.get("Messages", [])

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [self._as_record(message) for message in messages]}

    def _as_record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        }

    def settle(self, messages: list[dict[str, Any]], response: dict[str, Any]) -> None:
        """Delete what the handler did not report as failed."""
        failed = {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] not in failed:
                self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def run(self, handler: Any, until: Any, timeout_s: float = 10.0) -> int:
        """Feed the queue to ``handler(event, None)`` until ``until()`` is true; returns the batches run.

        Bounded by ``timeout_s``; each receive long-polls up to a second, so no busy loop.
        """
        deadline = time.monotonic() + timeout_s
        batches = 0
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError("the retry queue did not reach the expected state in time")
            messages = self.receive(wait_s=1)
            if messages:
                self.settle(messages, handler(self.event(messages), None))
                batches += 1
        return batches
