"""moto's server as the local stack runs it, with its local fixes: a failed transaction leaves no
trace (items and stream records), a successful one writes everything, stream iterators resume."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from taskcast.local.services import MotoService


@pytest.fixture(scope="module")
def clients() -> Iterator[tuple[Any, Any]]:
    service = MotoService()
    service.start()
    options = {"endpoint_url": service.url, "region_name": "us-east-1", "aws_access_key_id": "testing",
               "aws_secret_access_key": "testing"}
    dynamodb, streams = boto3.client("dynamodb", **options), boto3.client("dynamodbstreams", **options)
    dynamodb.create_table(
        TableName="tx", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    try:
        yield dynamodb, streams
    finally:
        service.stop()


def _item(pk: str, sk: str, **values: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **{key: {"S": value} for key, value in values.items()}}


def _stream_keys(dynamodb: Any, streams: Any) -> list[tuple[str, str]]:
    arn = dynamodb.describe_table(TableName="tx")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]
    return [(record["dynamodb"]["Keys"]["pk"]["S"], record["dynamodb"]["Keys"]["sk"]["S"]) for record in records]


def test_a_cancelled_transaction_leaves_no_item_and_no_stream_record(clients: tuple[Any, Any]) -> None:
    dynamodb, streams = clients
    dynamodb.put_item(TableName="tx", Item=_item("a", "STATE", status="one"))
    dynamodb.put_item(TableName="tx", Item=_item("z", "STATE"))
    before = _stream_keys(dynamodb, streams)
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "tx", "Item": _item("b", "STATE", status="new")}},
            {"Update": {"TableName": "tx", "Key": {"pk": {"S": "a"}, "sk": {"S": "STATE"}},
                        "UpdateExpression": "SET #s = :s", "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "two"}}}},
            {"ConditionCheck": {"TableName": "tx", "Key": {"pk": {"S": "z"}, "sk": {"S": "STATE"}},
                                "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert "Item" not in dynamodb.get_item(TableName="tx", Key={"pk": {"S": "b"}, "sk": {"S": "STATE"}})
    current = dynamodb.get_item(TableName="tx", Key={"pk": {"S": "a"}, "sk": {"S": "STATE"}})["Item"]
    assert current["status"] == {"S": "one"}  # the in-place update was rolled back too
    assert _stream_keys(dynamodb, streams) == before


def test_a_successful_transaction_writes_every_item_and_record(clients: tuple[Any, Any]) -> None:
    dynamodb, streams = clients
    before = _stream_keys(dynamodb, streams)
    dynamodb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "tx", "Item": _item("c", "STATE"), "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Put": {"TableName": "tx", "Item": _item("c", "V#0000000001")}},
    ])
    assert _stream_keys(dynamodb, streams)[len(before):] == [("c", "STATE"), ("c", "V#0000000001")]
    items = dynamodb.query(TableName="tx", KeyConditionExpression="pk = :pk",
                           ExpressionAttributeValues={":pk": {"S": "c"}})["Items"]
    assert len(items) == 2


def test_a_stream_can_be_read_after_a_given_sequence_number(clients: tuple[Any, Any]) -> None:
    dynamodb, streams = clients
    dynamodb.put_item(TableName="tx", Item=_item("d", "STATE"))
    dynamodb.put_item(TableName="tx", Item=_item("e", "STATE"))
    arn = dynamodb.describe_table(TableName="tx")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    start = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=start["ShardIterator"], Limit=1000)["Records"]
    second_last = records[-2]["dynamodb"]["SequenceNumber"]
    after = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                       SequenceNumber=second_last)
    rest = streams.get_records(ShardIterator=after["ShardIterator"])["Records"]
    assert [record["dynamodb"]["Keys"]["pk"]["S"] for record in rest] == ["e"]
