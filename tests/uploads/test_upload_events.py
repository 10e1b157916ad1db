"""The upload events handler and the worker on uploads: a landed object starts its task, the worker
re-checks it against the declaration, a missing upload expires its task."""

from __future__ import annotations

import hashlib
import json

from taskcast.models import Status
from tests.uploads.conftest import Clock, UploadHarness, s3_event


def waiting_task(harness: UploadHarness, data_size: int, content_type: str = "text/plain") -> tuple[dict, str]:
    body = harness.declare(content_type, size=data_size, task={"type": "digest"}).json()
    return body, body["task"]["id"]


def test_the_s3_event_starts_the_waiting_task_which_digests_the_object(harness: UploadHarness) -> None:
    data = b"line one\nline two\nno newline at the end"
    upload, task_id = waiting_task(harness, len(data))
    harness.put_object(upload, data)
    answer = harness.deliver(s3_event(f"uploads/acme/{upload['upload_id']}", len(data)))
    assert answer == {"batchItemFailures": []}
    assert harness.run_invoked_workers() == [task_id]
    task = harness.store.get(task_id)
    assert task.status is Status.SUCCEEDED and task.message is None
    assert task.result["sha256"] == hashlib.sha256(data).hexdigest()
    assert (task.result["size"], task.result["lines"]) == (len(data), 3)
    assert 0 < task.result["peak_memory_bytes"] < 8 * 1024 * 1024
    assert [entry["status"] for entry in harness.store.history(task_id)] == ["PENDING", "RUNNING", "SUCCEEDED"]


def test_a_repeated_event_starts_nothing_more(harness: UploadHarness) -> None:
    upload, task_id = waiting_task(harness, 2)
    harness.put_object(upload, b"ok")
    event = s3_event(f"uploads/acme/{upload['upload_id']}", 2)
    harness.deliver(event)
    harness.run_invoked_workers()
    harness.deliver(event, event)
    assert harness.invocations == []
    assert harness.store.get(task_id).version == 3


def test_an_object_of_another_size_or_type_fails_the_task_before_it_is_read(harness: UploadHarness) -> None:
    too_big, big_id = waiting_task(harness, 4)
    harness.put_object(too_big, b"12345678")
    wrong_type, type_id = waiting_task(harness, 4, "text/csv")
    harness.put_object(wrong_type, b"1234", content_type="image/png")
    harness.deliver(s3_event(f"uploads/acme/{too_big['upload_id']}", 8),
                    s3_event(f"uploads/acme/{wrong_type['upload_id']}", 4))
    assert sorted(harness.run_invoked_workers()) == sorted([big_id, type_id])
    size_error = harness.store.get(big_id).error
    assert size_error["type"].endswith("/upload-mismatch") and "8 bytes; 4 bytes were declared" in size_error["detail"]
    type_error = harness.store.get(type_id).error
    assert type_error["type"].endswith("/upload-mismatch") and "image/png" in type_error["detail"]


def test_events_for_other_buckets_keys_or_tenants_start_nothing(harness: UploadHarness) -> None:
    upload, task_id = waiting_task(harness, 1)
    harness.put_object(upload, b"x")
    key = f"uploads/acme/{upload['upload_id']}"
    answer = harness.deliver(
        s3_event(key, 1, bucket="someone-elses-bucket"),
        s3_event(f"uploads/globex/{upload['upload_id']}", 1),  # the id under another tenant's prefix
        s3_event("results/acme/x.json", 1),
        s3_event(key, 1, event_name="ObjectRemoved:Delete"),
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "taskcast-payloads"}),
        "not json",
        json.dumps({"Records": [{"eventSource": "aws:sqs"}]}),
    )
    assert answer == {"batchItemFailures": []}  # malformed messages are dropped, not retried forever
    assert harness.invocations == []
    assert harness.store.get(task_id).status is Status.PENDING


def test_a_failed_worker_start_is_retried_by_the_queue(harness: UploadHarness) -> None:
    upload, _ = waiting_task(harness, 1)
    harness.put_object(upload, b"x")

    def unavailable(task_id: str, worker_class: str) -> None:
        raise ConnectionError("lambda unavailable")

    harness.event_deps.invoke_worker = unavailable
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "taskcast-payloads"})
    answer = harness.deliver(test_event, s3_event(f"uploads/acme/{upload['upload_id']}", 1))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}  # only the failed one comes back


def test_a_task_whose_input_names_another_tenants_upload_fails_in_the_worker_too(harness: UploadHarness) -> None:
    from taskcast.models import Task

    upload = harness.declare("text/plain", size=3, tenant="globex").json()
    harness.put_object(upload, b"abc")
    # Written behind the API's back: the worker must refuse on its own.
    task = harness.store.create(Task(id="stolen", tenant="acme", type="digest",
                                     input={"upload_id": upload["upload_id"]}))
    harness.run_worker(task.id)
    error = harness.store.get(task.id).error
    assert error["type"].endswith("/upload-not-found") and "abc" not in json.dumps(harness.store.get(task.id).result)


def test_the_deadline_fails_a_task_whose_upload_never_came(harness: UploadHarness, clock: Clock) -> None:
    upload, task_id = waiting_task(harness, 10)
    stored = harness.uploads.get(upload["upload_id"])
    due = stored.url_expires_at + harness.settings.upload_grace_s  # the URL's expiry plus the grace period
    deadline = json.dumps({"kind": "upload-deadline", "upload_id": stored.id, "task_id": task_id, "not_before": due})

    clock.now = due - 1200  # not yet due, and beyond SQS's 15-minute delay: sent on again
    assert harness.deliver(deadline) == {"batchItemFailures": []}
    assert harness.store.get(task_id).status is Status.PENDING
    attributes = harness.sqs.get_queue_attributes(QueueUrl=harness.settings.upload_events_queue_url,
                                                  AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "2"  # at creation, and sent on

    clock.now = due
    harness.deliver(deadline)
    task = harness.store.get(task_id)
    assert task.status is Status.FAILED and task.message is None
    assert task.error["type"].endswith("/upload-expired") and task.error["upload_id"] == stored.id
    assert "POST /uploads" in task.error["detail"]
    harness.deliver(deadline)  # repeated: the task is already finished
    assert harness.store.get(task_id).version == task.version


def test_the_deadline_starts_a_task_whose_object_came_without_its_event(harness: UploadHarness, clock: Clock) -> None:
    upload, task_id = waiting_task(harness, 2)
    harness.put_object(upload, b"hi")
    stored = harness.uploads.get(upload["upload_id"])
    clock.now = stored.url_expires_at + harness.settings.upload_grace_s + 1
    harness.deliver(json.dumps({"kind": "upload-deadline", "upload_id": stored.id, "task_id": task_id,
                                "not_before": stored.url_expires_at + harness.settings.upload_grace_s}))
    assert harness.run_invoked_workers() == [task_id]
    assert harness.store.get(task_id).status is Status.SUCCEEDED


def test_creating_the_task_queues_its_deadline(harness: UploadHarness) -> None:
    from dataclasses import replace

    # A URL that expires at once and no grace: the deadline is due now, so SQS shows it without delay.
    harness.deps.settings = replace(harness.settings, upload_url_ttl_s=0, upload_grace_s=0)
    upload, task_id = waiting_task(harness, 1)
    (message,) = harness.queued_messages()
    assert message == {"kind": "upload-deadline", "upload_id": upload["upload_id"], "task_id": task_id,
                       "not_before": harness.uploads.get(upload["upload_id"]).url_expires_at}


def test_a_cancelled_waiting_task_is_not_started_by_its_upload(harness: UploadHarness) -> None:
    upload, task_id = waiting_task(harness, 1)
    assert harness.request("DELETE", f"/tasks/{task_id}").status == 202
    harness.put_object(upload, b"x")
    harness.deliver(s3_event(f"uploads/acme/{upload['upload_id']}", 1))
    assert harness.invocations == []
    assert harness.store.get(task_id).status is Status.CANCELLED


def test_a_task_of_a_large_job_started_by_its_upload_goes_to_the_large_worker(harness: UploadHarness) -> None:
    digest = harness.registry.get("digest")
    harness.registry.job("digest-large", digest.input_model, memory="large")(digest.function)
    body = harness.declare("text/plain", size=2, task={"type": "digest-large"}).json()
    harness.put_object(body, b"ok")

    harness.deliver(s3_event(f"uploads/acme/{body['upload_id']}", 2))

    task_id = body["task"]["id"]
    assert harness.worker_classes == {task_id: "large"}
    assert harness.run_invoked_workers() == [task_id]
    assert harness.store.get(task_id).status is Status.SUCCEEDED
