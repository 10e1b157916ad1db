"""A worker that times out or crashes ends FAILED through its async on-failure destination (SQS)."""

from __future__ import annotations

import copy
import json

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from handlers import worker_failure
from taskcast.settings import Settings
from taskcast.store import TaskStore
from taskcast.worker_failure_consumer import WorkerFailureDeps
from tests.functional.rest_harness import WAIT_S, FakeLambdaContext, RestHarness, load_event


def destination_record(task_id: str, error_message: str, error_type: str | None = None) -> dict:
    """What Lambda sends to the on-failure destination after the last attempt of an async invoke."""
    response: dict = {"errorMessage": error_message}
    if error_type:
        response["errorType"] = error_type
    return {
        "version": "1.0",
        "timestamp": "2025-01-27T16:39:47.617Z",
        "requestContext": {
            "requestId": "e4b46cbf-b738-4a6f-8880-a18cdf61200e",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:taskcast-worker:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 1,
        },
        "requestPayload": {"task_id": task_id},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": response,
    }


def sqs_event(*bodies: str) -> dict:
    template = load_event("sqs.json")["Records"][0]
    records = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record.update(messageId=f"message-{index}", body=body)
        records.append(record)
    return {"Records": records}


def deliver(event: dict, store: TaskStore | None = None) -> dict:
    deps = WorkerFailureDeps(store) if store else WorkerFailureDeps.from_settings(Settings.from_env())
    return worker_failure.lambda_handler(event, FakeLambdaContext("taskcast-worker-failure"), deps)


def test_timed_out_worker_ends_failed_with_timeout_and_its_late_result_is_dropped(api: RestHarness) -> None:
    task_id, gate = api.create_gate("overrun")
    assert gate.reported.wait(WAIT_S)
    record = destination_record(
        task_id,
        "2025-01-27T16:39:47.617Z e4b46cbf-b738-4a6f-8880-a18cdf61200e Task timed out after 3.00 seconds",
        "Sandbox.Timedout",
    )
    assert deliver(sqs_event(json.dumps(record)), api.store) == {"batchItemFailures": []}
    failed = api.request("GET", f"/tasks/{task_id}").json()
    assert failed["status"] == "FAILED"
    assert failed["error"]["type"].endswith("/timeout")
    assert "timed out" in failed["error"]["detail"]

    gate.release.set()  # the "dead" worker comes back late: its result must not win
    api.join_workers()
    assert api.request("GET", f"/tasks/{task_id}").json()["version"] == failed["version"]
    assert api.request("GET", f"/tasks/{task_id}/result").status == 409


def test_crashed_worker_ends_failed_with_worker_crashed(dynamodb, settings) -> None:
    with RestHarness(settings, start_workers=False) as api:
        task_id = api.create("sleep", {"seconds": 1}).json()["id"]  # never started: still PENDING
        record = destination_record(task_id, "RequestId: x Error: Runtime exited with error: signal: killed")
        deliver(sqs_event(json.dumps(record)), api.store)
        error = api.request("GET", f"/tasks/{task_id}").json()["error"]
        assert error["type"].endswith("/worker-crashed")
        assert "signal: killed" in error["detail"]


def test_failure_record_for_a_finished_task_changes_nothing(api: RestHarness) -> None:
    task_id = api.create("sleep", {"seconds": 0}, headers={"Prefer": "wait=5"}).json()["id"]
    before = api.request("GET", f"/tasks/{task_id}").json()
    deliver(sqs_event(json.dumps(destination_record(task_id, "Task timed out after 1.00 seconds"))), api.store)
    assert api.request("GET", f"/tasks/{task_id}").json() == before


def test_malformed_records_are_dropped_and_storage_errors_are_retried(api: RestHarness, settings) -> None:
    task_id = api.create("sleep", {"seconds": 1}).json()["id"]
    good = json.dumps(destination_record(task_id, "Task timed out after 1.00 seconds"))
    answer = deliver(sqs_event("not json", json.dumps({"requestPayload": {}}), good), api.store)
    assert answer == {"batchItemFailures": []}

    missing_table = TaskStore("no-such-table")
    answer = deliver(sqs_event("not json", good), missing_table)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "message-1"}]}
    # When every record fails, the whole batch goes back to the queue (Powertools raises).
    with pytest.raises(BatchProcessingError):
        deliver(sqs_event(good), missing_table)
