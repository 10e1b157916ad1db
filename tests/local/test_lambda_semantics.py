"""Lambda's contract as the local stack keeps it: invocations, timeouts, destination records, event
filters, batch responses and event records."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from taskcast.local.async_invoke import destination_record
from taskcast.local.event_sources import failed_identifiers, sqs_record, stream_record
from taskcast.local.filters import FilterError, matches, parse_filters, record_passes, sqs_view
from taskcast.local.functions import FunctionRegistry, Invocation, LocalFunction


def _function(handler, timeout_s: float = 3.0) -> LocalFunction:
    function = LocalFunction("Probe", "taskcast-probe", "arn:aws:lambda:us-east-1:123456789012:function:taskcast-probe",
                             "tests.probe", timeout_s=timeout_s)
    function._handler = handler
    return function


def test_an_invocation_answers_the_payload_through_json_with_a_lambda_context() -> None:
    seen = {}

    def handler(event, context):
        seen.update(name=context.function_name, request=context.aws_request_id,
                    remaining=context.get_remaining_time_in_millis(), arn=context.invoked_function_arn)
        event["mutated"] = True
        return {"answer": (1, 2)}

    event = {"a": 1}
    invocation = _function(handler).invoke(event, request_id="req-1")
    assert invocation.payload == {"answer": [1, 2]} and not invocation.failed
    assert event == {"a": 1}  # the handler got a copy, as it would on Lambda
    assert seen["name"] == "taskcast-probe" and seen["request"] == "req-1" and 0 < seen["remaining"] <= 3000


def test_an_exception_becomes_lambdas_error_object() -> None:
    def handler(event, context):
        raise KeyError("missing")

    invocation = _function(handler).invoke({}, request_id="req-2")
    assert invocation.failed and not invocation.timed_out
    assert invocation.error["errorType"] == "KeyError" and invocation.error["requestId"] == "req-2"
    assert invocation.error["stackTrace"]


def test_an_answer_json_cannot_carry_is_an_error() -> None:
    invocation = _function(lambda event, context: {1, 2}).invoke({})
    assert invocation.failed and invocation.error["errorType"] == "TypeError"


def test_an_overrun_is_reported_as_lambdas_timeout_and_the_thread_is_left_behind() -> None:
    release = threading.Event()
    invocation = _function(lambda event, context: release.wait(30), timeout_s=0.2).invoke({}, request_id="req-3")
    release.set()
    assert invocation.timed_out and invocation.failed
    assert invocation.error["errorMessage"].endswith("req-3 Task timed out after 0.20 seconds")


def test_the_registry_finds_functions_by_name_arn_and_integration_uri() -> None:
    function = _function(lambda event, context: None)
    registry = FunctionRegistry([function])
    assert registry.find("taskcast-probe") is function
    assert registry.find("taskcast-probe:$LATEST") is function
    assert registry.find(function.arn + ":$LATEST") is function
    uri = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function.arn}/invocations"
    assert registry.function_for_arn_reference(uri) is function
    assert registry.find("other") is None


def test_the_async_destination_record_has_lambdas_shape() -> None:
    function = _function(lambda event, context: None)
    error = {"errorMessage": "2024-01-01T00:00:00.000Z r Task timed out after 3.00 seconds"}
    record = destination_record(function, {"task_id": "t"}, Invocation("r", error=error), 1, success=False)
    assert record["version"] == "1.0" and record["timestamp"].endswith("Z")
    assert record["requestContext"] == {"requestId": "r", "functionArn": function.arn + ":$LATEST",
                                        "condition": "RetriesExhausted", "approximateInvokeCount": 1}
    assert record["requestPayload"] == {"task_id": "t"}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"] == error


STATE_FILTER = parse_filters({"Filters": [
    {"Pattern": '{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"sk": {"S": ["STATE"]}}}}'}
]})


def _record(event_name: str, sk: str) -> dict:
    return {"eventName": event_name, "dynamodb": {"Keys": {"pk": {"S": "t"}, "sk": {"S": sk}}}}


def test_the_templates_stream_filter_keeps_only_state_changes() -> None:
    assert record_passes(STATE_FILTER, _record("INSERT", "STATE"))
    assert record_passes(STATE_FILTER, _record("MODIFY", "STATE"))
    assert not record_passes(STATE_FILTER, _record("REMOVE", "STATE"))
    assert not record_passes(STATE_FILTER, _record("INSERT", "V#0000000001"))
    assert record_passes([], _record("REMOVE", "x"))  # no filter: everything passes


def test_filter_operators() -> None:
    event = {"name": "order-17", "size": 12, "tags": ["a", "b"], "flag": True}
    assert matches({"name": [{"prefix": "order-"}]}, event)
    assert matches({"name": [{"suffix": "-17"}]}, event)
    assert matches({"name": [{"equals-ignore-case": "ORDER-17"}]}, event)
    assert matches({"name": [{"anything-but": ["x", "y"]}]}, event)
    assert not matches({"name": [{"anything-but": {"prefix": "order"}}]}, event)
    assert matches({"size": [{"numeric": [">", 10, "<=", 12]}]}, event)
    assert matches({"size": [12.0]}, event) and not matches({"flag": [1]}, event)
    assert matches({"tags": ["b"]}, event)
    assert matches({"missing": [{"exists": False}]}, event) and not matches({"name": [{"exists": False}]}, event)
    with pytest.raises(FilterError):
        matches({"name": "order-17"}, event)


def test_sqs_filters_see_a_json_body_as_an_object() -> None:
    record = {"body": '{"kind": "retry"}'}
    assert matches({"body": {"kind": ["retry"]}}, sqs_view(record))
    assert sqs_view({"body": "plain"}) == {"body": "plain"}


@pytest.mark.parametrize(("payload", "failed"), [
    (None, set()), ({}, set()), ({"batchItemFailures": []}, set()),
    ({"batchItemFailures": [{"itemIdentifier": "2"}]}, {"2"}),
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"1", "2", "3"}),
    ({"batchItemFailures": [{"itemIdentifier": None}]}, {"1", "2", "3"}),
    ({"batchItemFailures": [{"itemIdentifier": "9"}]}, {"1", "2", "3"}),
    ({"batchItemFailures": [{"wrongKey": "2"}]}, {"1", "2", "3"}),
    ({"batchItemFailures": "2"}, {"1", "2", "3"}),
])
def test_batch_item_failures_follow_lambdas_rules(payload: object, failed: set[str]) -> None:
    assert failed_identifiers(Invocation("r", payload=payload), ["1", "2", "3"]) == failed


def test_a_function_error_fails_the_whole_batch() -> None:
    assert failed_identifiers(Invocation("r", error={"errorMessage": "x"}), ["1", "2"]) == {"1", "2"}


def test_stream_records_have_the_lambda_event_shape() -> None:
    raw = {
        "eventID": "e1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
                     "Keys": {"pk": {"S": "t"}}, "NewImage": {"blob": {"B": b"\x01\x02"}},
                     "SequenceNumber": "100", "SizeBytes": 26, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    record = stream_record(raw, "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x", "eu-west-1")
    assert record["eventSourceARN"].endswith("/stream/x") and record["awsRegion"] == "eu-west-1"
    assert record["dynamodb"]["ApproximateCreationDateTime"] == 1704164645.0
    assert record["dynamodb"]["NewImage"] == {"blob": {"B": "AQI="}}
    assert record["dynamodb"]["SequenceNumber"] == "100" and record["dynamodb"]["SizeBytes"] == 26


def test_sqs_records_have_the_lambda_event_shape() -> None:
    message = {
        "MessageId": "m1", "ReceiptHandle": "h1", "Body": "hello", "MD5OfBody": "5d41",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183"},
        "MessageAttributes": {"kind": {"StringValue": "retry", "DataType": "String"}},
    }
    record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    assert record == {
        "messageId": "m1", "receiptHandle": "h1", "body": "hello",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183"},
        "messageAttributes": {"kind": {"stringListValues": [], "binaryListValues": [], "dataType": "String",
                                       "stringValue": "retry"}},
        "md5OfBody": "5d41", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }
