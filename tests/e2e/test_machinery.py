"""The local stack's Lambda machinery on a test copy of template.yaml with probe resources and
functions (``support/templates.py``, ``support/dummy_functions.py``): what the template adds shows up,
events have AWS's shapes, and the event source mappings and asynchronous invocations keep Lambda's
retry rules."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from websockets.exceptions import ConnectionClosed

from taskcast.local.testing import RunningStack
from tests.conftest import TENANTS
from tests.e2e.conftest import eventually, probe_items

ACME = TENANTS["acme"]["api_key"]


def _take_message(stack: RunningStack, queue: str, wanted, within_s: float = 20.0) -> dict[str, Any]:
    """Receives from ``queue`` until a JSON message satisfies ``wanted`` (others are left for their tests)."""
    sqs = stack.client("sqs")

    def look() -> dict[str, Any] | None:
        answer = sqs.receive_message(QueueUrl=stack.queue_url(queue), MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     VisibilityTimeout=0)
        for message in answer.get("Messages", []):
            body = json.loads(message["Body"])
            if wanted(body):
                sqs.delete_message(QueueUrl=stack.queue_url(queue), ReceiptHandle=message["ReceiptHandle"])
                return body
        return None

    return eventually(look, within_s=within_s, every_s=0)


# ---------------------------------------------------------------------------------------------- template
def test_resources_added_to_the_template_exist_locally(probe_stack: RunningStack) -> None:
    tables = probe_stack.resources["tables"]
    assert tables["ProbeTable"] == "taskcast-probe" and tables["TasksTable"] == "taskcast-tasks"
    description = probe_stack.client("dynamodb").describe_table(TableName=tables["SourceTable"])["Table"]
    assert description["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    attributes = probe_stack.client("sqs").get_queue_attributes(
        QueueUrl=probe_stack.queue_url("ProbeQueue"), AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "1"
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(":taskcast-probe-dead-letter")
    assert probe_stack.functions["EchoFunction"]["name"] == "taskcast-echo"


def test_a_route_added_to_the_template_gets_a_v1_proxy_event(probe_stack: RunningStack) -> None:
    answer = requests.post(f"{probe_stack.http_url}/echo/a/b%20c?x=1&x=2&y=", data="hello",
                           headers={"X-Probe": "one"}, timeout=15)
    assert answer.status_code == 200
    seen = answer.json()
    event = seen["event"]
    assert event["resource"] == "/echo/{proxy+}"
    assert event["path"] == "/echo/a/b%20c"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"proxy": "a/b c"}
    assert event["queryStringParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    assert event["headers"]["X-Probe"] == "one" and event["multiValueHeaders"]["X-Probe"] == ["one"]
    assert (event["body"], event["isBase64Encoded"]) == ("hello", False)
    context = event["requestContext"]
    assert context["resourcePath"] == "/echo/{proxy+}" and context["stage"] == "prod"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["authorizer"] is None and context["requestId"] == answer.headers["x-amzn-RequestId"]
    # The function's environment is Globals + its own, resolved: a Ref to the new table is its local name.
    assert seen["env"]["PROBE_TABLE"] == "taskcast-probe" and seen["env"]["TASKS_TABLE"] == "taskcast-tasks"
    assert seen["env"]["PROBE_QUEUE_URL"] == probe_stack.queue_url("ProbeQueue")
    assert seen["function_name"] == "taskcast-echo" and 0 < seen["remaining_ms"] <= 7000


def test_the_default_authorizer_guards_new_routes_and_hands_its_context_on(probe_stack: RunningStack) -> None:
    assert requests.get(f"{probe_stack.http_url}/guarded/item-1", timeout=15).status_code == 401
    answer = requests.get(f"{probe_stack.http_url}/guarded/item-1", headers={"Authorization": f"Bearer {ACME}"},
                          timeout=15)
    assert answer.status_code == 200
    authorizer = answer.json()["event"]["requestContext"]["authorizer"]
    assert authorizer["tenant"] == "acme" and authorizer["principalId"] == "acme"


def test_the_integration_timeout_answers_504(probe_stack: RunningStack) -> None:
    answer = requests.get(f"{probe_stack.http_url}/slow", params={"seconds": 9}, timeout=30)
    assert answer.status_code == 504
    assert answer.json() == {"message": "Endpoint request timed out"}


def test_an_invalid_proxy_answer_is_502(probe_stack: RunningStack) -> None:
    answer = requests.get(f"{probe_stack.http_url}/broken", timeout=15)
    assert answer.status_code == 502
    assert answer.json() == {"message": "Internal server error"}


def test_an_idle_websocket_is_closed_with_going_away(probe_stack: RunningStack, websocket) -> None:
    connection = websocket(stack_=probe_stack)  # this stack's idle timeout is 2 s
    with pytest.raises(ConnectionClosed) as closed:
        connection.recv(timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_an_active_websocket_is_closed_at_its_maximum_duration(probe_stack: RunningStack, websocket) -> None:
    connection = websocket(stack_=probe_stack)  # 4 s in all, while pings keep the 2 s idle timeout away
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            connection.send(json.dumps({"action": "ping"}))
            assert json.loads(connection.recv(timeout=15))["type"] == "pong"
            with contextlib.suppress(TimeoutError):
                connection.recv(timeout=1)  # waits for the close, pinging again well within the idle limit
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


# ---------------------------------------------------------------------------------------------- streams
def _put_together(stack: RunningStack, items: list[dict[str, Any]]) -> None:
    """One transaction: its stream records reach the poller in the same batch."""
    table = stack.table_name("SourceTable")
    stack.client("dynamodb").transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": {key: {"S": value} for key, value in item.items()}}} for item in items
    ])


def test_a_reported_item_failure_is_retried_from_that_record_only(probe_stack: RunningStack) -> None:
    keys = [f"partial-{index}" for index in range(5)]
    _put_together(probe_stack, [{"pk": key, **({"fail_once": "yes"} if index == 2 else {})}
                                for index, key in enumerate(keys)])

    eventually(lambda: len(probe_items(probe_stack, f"stream#{keys[-1]}")) >= 2)

    deliveries = [len(probe_items(probe_stack, f"stream#{key}")) for key in keys]
    # Lambda checkpoints before the first failed record: those before it are done, it and the rest come again.
    assert deliveries == [1, 1, 2, 2, 2]
    first = probe_items(probe_stack, f"stream#{keys[0]}")[0]
    assert first["event_name"] == "INSERT" and first["source"] == probe_stack.resources["streams"]["SourceTable"]


def test_retries_count_from_the_checkpoint_so_a_partial_success_starts_them_again(probe_stack: RunningStack) -> None:
    # One batch whose records fail 1, 2 and 3 times: each invocation gets one further (MaximumRetryAttempts
    # is 1), so no record fails twice from the same checkpoint and every one is delivered in the end.
    keys = [f"retry-count-{index}" for index in range(3)]
    _put_together(probe_stack, [{"pk": key, "fail_times": str(index + 1)} for index, key in enumerate(keys)])

    assert eventually(lambda: len(probe_items(probe_stack, f"stream#{keys[-1]}")) >= 4)

    assert [len(probe_items(probe_stack, f"stream#{key}")) for key in keys] == [2, 3, 4]


def test_a_record_that_keeps_failing_is_bisected_out_and_sent_to_the_failure_destination(
    probe_stack: RunningStack,
) -> None:
    _put_together(probe_stack, [{"pk": "bisect-a"}, {"pk": "bisect-bad", "always_fail": "yes"}, {"pk": "bisect-b"}])

    record = _take_message(probe_stack, "ProbeFailureQueue", lambda body: "DDBStreamBatchInfo" in body)

    batch = record["DDBStreamBatchInfo"]
    assert batch["batchSize"] == 1 and batch["startSequenceNumber"] == batch["endSequenceNumber"]
    assert batch["streamArn"] == probe_stack.resources["streams"]["SourceTable"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2  # MaximumRetryAttempts: 1
    assert record["responseContext"]["functionError"] == "Unhandled"
    # The good records around it were delivered.
    assert eventually(lambda: probe_items(probe_stack, "stream#bisect-b"))
    assert probe_items(probe_stack, "stream#bisect-a")


def test_records_outside_the_filter_criteria_are_skipped(probe_stack: RunningStack) -> None:
    table = probe_stack.table_name("SourceTable")
    dynamodb = probe_stack.client("dynamodb")
    _put_together(probe_stack, [{"pk": "filtered"}])
    eventually(lambda: probe_items(probe_stack, "stream#filtered"))
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "filtered"}})
    _put_together(probe_stack, [{"pk": "after-filtered"}])

    eventually(lambda: probe_items(probe_stack, "stream#after-filtered"))

    # Records are delivered in order, so the REMOVE before it was seen and dropped by the filter.
    assert [item["event_name"] for item in probe_items(probe_stack, "stream#filtered")] == ["INSERT"]


# ---------------------------------------------------------------------------------------------- queues
def test_queue_messages_reported_failed_come_back_then_go_to_the_dead_letter_queue(probe_stack: RunningStack) -> None:
    sqs = probe_stack.client("sqs")
    sqs.send_message(QueueUrl=probe_stack.queue_url("ProbeQueue"), MessageBody="fine")
    sqs.send_message(QueueUrl=probe_stack.queue_url("ProbeQueue"), MessageBody="fail")

    dead = _take_message_raw(probe_stack, "ProbeDeadLetterQueue")

    assert dead == "fail"
    assert len(probe_items(probe_stack, "queue#fine")) == 1  # deleted after its success
    counts = sorted(item["receive_count"] for item in probe_items(probe_stack, "queue#fail"))
    assert counts == ["1", "2"]  # maxReceiveCount: 2


def test_a_delayed_message_is_delivered_after_its_delay(probe_stack: RunningStack) -> None:
    probe_stack.client("sqs").send_message(QueueUrl=probe_stack.queue_url("ProbeQueue"), MessageBody="later",
                                           DelaySeconds=1)
    assert eventually(lambda: probe_items(probe_stack, "queue#later"))


def _take_message_raw(stack: RunningStack, queue: str) -> str:
    sqs = stack.client("sqs")

    def look() -> str | None:
        messages = sqs.receive_message(QueueUrl=stack.queue_url(queue), WaitTimeSeconds=1).get("Messages", [])
        return messages[0]["Body"] if messages else None

    return eventually(look, within_s=30, every_s=0)


# ---------------------------------------------------------------------------------------------- Lambda API
def test_an_asynchronous_invocation_that_fails_is_retried_then_sent_to_on_failure(probe_stack: RunningStack) -> None:
    payload = {"name": "async-failing", "fail": True}
    answer = probe_stack.client("lambda").invoke(FunctionName="taskcast-async-target", InvocationType="Event",
                                                 Payload=json.dumps(payload).encode())
    assert answer["StatusCode"] == 202

    record = _take_message(probe_stack, "ProbeFailureQueue",
                           lambda body: (body.get("requestPayload") or {}).get("name") == "async-failing")

    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2  # MaximumRetryAttempts: 1
    assert record["requestPayload"] == payload
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert len(probe_items(probe_stack, "async#async-failing")) == 2


def test_an_asynchronous_invocation_that_times_out_reports_lambdas_timeout_message(probe_stack: RunningStack) -> None:
    payload = {"name": "async-slow", "sleep": 3}
    probe_stack.client("lambda").invoke(FunctionName="taskcast-async-target", InvocationType="Event",
                                        Payload=json.dumps(payload).encode())

    record = _take_message(probe_stack, "ProbeFailureQueue",
                           lambda body: (body.get("requestPayload") or {}).get("name") == "async-slow")

    message = record["responsePayload"]["errorMessage"]
    assert message.endswith("Task timed out after 1.00 seconds")
    assert record["requestContext"]["requestId"] in message


def test_a_synchronous_invocation_answers_the_payload_or_the_error(probe_stack: RunningStack) -> None:
    client = probe_stack.client("lambda")
    ok = client.invoke(FunctionName="taskcast-async-target", Payload=b'{"name": "sync-ok"}')
    assert ok["StatusCode"] == 200 and "FunctionError" not in ok
    assert json.loads(ok["Payload"].read()) == {"echo": {"name": "sync-ok"}}

    failed = client.invoke(FunctionName="taskcast-async-target", Payload=b'{"name": "sync-bad", "fail": true}')
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorMessage"] == "asked to fail"

    with pytest.raises(ClientError) as missing:
        client.invoke(FunctionName="no-such-function", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
