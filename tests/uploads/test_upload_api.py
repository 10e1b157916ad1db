"""POST /uploads and tasks whose input names an upload, through the REST handler against moto."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.uploads.conftest import BUCKET, UploadHarness


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_a_declared_size_gets_a_presigned_put_signing_type_and_length(harness: UploadHarness) -> None:
    reply = harness.declare("text/csv", size=1234)
    assert reply.status == 201, reply.text
    body = reply.json()
    assert body["method"] == "PUT" and "fields" not in body and "task" not in body
    assert body["headers"] == {"Content-Type": "text/csv", "Content-Length": "1234"}
    assert body["max_size"] == 1234
    signed = query(body["url"])
    assert signed["X-Amz-SignedHeaders"] == "content-length;content-type;host"
    assert signed["X-Amz-Expires"] == str(harness.settings.upload_url_ttl_s)
    assert urlsplit(body["url"]).path.endswith(f"/uploads/acme/{body['upload_id']}")
    assert reply.header("Location") is None and reply.header("Cache-Control") == "no-store"
    upload = harness.uploads.get(body["upload_id"])
    assert (upload.tenant, upload.content_type, upload.size, upload.task_id) == ("acme", "text/csv", 1234, None)


def test_without_a_size_the_upload_is_a_post_policy_bounded_by_the_maximum(harness: UploadHarness) -> None:
    body = harness.declare("application/json").json()
    assert body["method"] == "POST" and "headers" not in body
    assert body["fields"]["key"] == f"uploads/acme/{body['upload_id']}"
    assert body["fields"]["Content-Type"] == "application/json"
    assert body["max_size"] == harness.settings.max_upload_bytes
    import base64
    import json

    policy = json.loads(base64.b64decode(body["fields"]["policy"]))
    assert ["content-length-range", 0, harness.settings.max_upload_bytes] in policy["conditions"]
    assert {"Content-Type": "application/json"} in policy["conditions"]


def test_an_upload_with_a_task_creates_it_waiting_and_names_it(harness: UploadHarness) -> None:
    reply = harness.declare("text/plain", size=5, task={"type": "digest"})
    assert reply.status == 201, reply.text
    body = reply.json()
    task = body["task"]
    assert (task["status"], task["version"], task["message"]) == ("PENDING", 1, "waiting for upload")
    assert reply.header("Location") == f"/tasks/{task['id']}"
    assert reply.header("Retry-After") == str(harness.settings.retry_after_s)
    assert harness.invocations == []  # nothing runs before the file lands
    assert harness.store.get(task["id"]).input == {"upload_id": body["upload_id"]}
    assert harness.uploads.get(body["upload_id"]).task_id == task["id"]


@pytest.mark.parametrize(
    ("body", "kind", "words"),
    [
        ({"content_type": "not a type", "size": 3}, "invalid-request", "content_type"),
        ({"content_type": "text/plain\r\nX-Evil: 1", "size": 3}, "invalid-request", "content_type"),
        ({"content_type": "text/plain", "size": -1}, "invalid-request", "size"),
        ({"content_type": "text/plain", "size": 6 * 1024**3}, "upload-too-large", "limited to"),
        ({"content_type": "text/plain", "task": {"type": "nope"}}, "unknown-job-type", "nope"),
        ({"content_type": "text/plain", "task": {"type": "sleep"}}, "invalid-input", "upload_id"),
        ({"content_type": "text/plain", "task": {"type": "digest", "callback_url": "https://10.0.0.1/x"}},
         "callback-refused", "10.0.0.1"),
        ({"content_type": "text/plain", "extra": 1}, "invalid-request", "extra"),
    ],
)
def test_bad_declarations_are_400_problems_and_create_nothing(
    harness: UploadHarness, body: dict, kind: str, words: str
) -> None:
    reply = harness.request("POST", "/uploads", json_body=body)
    assert reply.status == 400, reply.text
    assert reply.header("Content-Type") == "application/problem+json"
    problem = reply.json()
    assert problem["type"].endswith(f"/{kind}") and words in (problem["detail"] + str(problem.get("errors")))
    assert harness.dynamodb.scan(TableName=harness.settings.tasks_table)["Count"] == 0


def test_an_unreachable_deadline_queue_fails_the_new_task_with_503(harness: UploadHarness) -> None:
    harness.deps.deadlines.queue_url = ""
    reply = harness.declare("text/plain", size=1, task={"type": "digest"})
    assert reply.status == 503
    problem = reply.json()
    assert problem["type"].endswith("/upload-unavailable")
    assert harness.store.get(problem["task_id"]).status == "FAILED"


def test_a_task_naming_an_upload_starts_only_once_the_object_is_there(harness: UploadHarness) -> None:
    upload = harness.declare("text/plain", size=11).json()
    early = harness.create("digest", {"upload_id": upload["upload_id"]})
    assert early.status == 409 and early.json()["type"].endswith("/upload-not-received")
    harness.put_object(upload, b"hello\nworld")
    reply = harness.create("digest", {"upload_id": upload["upload_id"]})
    assert reply.status == 202, reply.text
    (task_id,) = harness.run_invoked_workers()
    result = harness.request("GET", f"/tasks/{task_id}/result").json()
    assert result["sha256"] == hashlib.sha256(b"hello\nworld").hexdigest()
    assert (result["size"], result["lines"], result["content_type"]) == (11, 2, "text/plain")


def test_another_tenant_cannot_name_the_upload(harness: UploadHarness) -> None:
    upload = harness.declare("text/plain", size=3).json()
    harness.put_object(upload, b"abc")
    reply = harness.create("digest", {"upload_id": upload["upload_id"]}, tenant="globex")
    assert reply.status == 400
    assert reply.json()["type"].endswith("/unknown-upload")
    unknown = harness.create("digest", {"upload_id": "no-such-upload"}, tenant="globex")
    assert unknown.json()["detail"] == "There is no upload 'no-such-upload'."  # the same answer: nothing leaks


def test_a_large_result_answers_303_to_a_presigned_get_of_the_same_json(harness: UploadHarness) -> None:
    import requests

    reply = harness.create("big", {"bytes": 300 * 1024})
    (task_id,) = harness.run_invoked_workers()
    task = harness.store.get(task_id)
    assert task.result is None and task.result_ref == f"results/acme/{task_id}.json"
    answer = harness.request("GET", f"/tasks/{task_id}/result")
    assert reply.status == 202 and answer.status == 303
    location = answer.header("Location")
    assert query(location)["X-Amz-Expires"] == str(harness.settings.result_url_ttl_s)
    fetched = requests.get(location, timeout=10)  # moto answers presigned URLs in-process
    assert fetched.status_code == 200 and fetched.json() == "x" * 300 * 1024
    assert harness.request("GET", f"/tasks/{task_id}/result", tenant="globex").status == 404
    stored = harness.s3.get_object(Bucket=BUCKET, Key=task.result_ref)
    assert stored["ContentType"] == "application/json"


def test_a_result_that_would_overflow_the_task_record_goes_to_s3_too(harness: UploadHarness) -> None:
    # Input and result each under the inline limit, together over DynamoDB's 400 KB item limit.
    harness.registry.job("echo")(lambda job_input, ctx: job_input)
    reply = harness.create("echo", {"blob": "y" * 200 * 1024})
    assert reply.status == 202
    (task_id,) = harness.run_invoked_workers()
    task = harness.store.get(task_id)
    assert task.status == "SUCCEEDED" and task.result_ref is not None
