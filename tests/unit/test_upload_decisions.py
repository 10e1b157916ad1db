"""The pure parts of the large-payload path: keys, declarations, result placement, queue messages,
the digest and its progress, presigned targets and S3's presigned checks."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config
from hypothesis import given
from hypothesis import strategies as st

from taskcast.jobs.digest import Digest, digest_object, progress_marks
from taskcast.jobs.memory import traced_peak
from taskcast.local.sigv4 import check_post_policy, check_presigned
from taskcast.models import Status, Task
from taskcast.presign import presign_upload
from taskcast.results import ITEM_BUDGET_BYTES, goes_to_s3
from taskcast.upload_events import (
    MAX_SQS_DELAY_S,
    NotAnUploadMessage,
    ObjectCreated,
    UploadDeadline,
    deadline_for,
    delay_seconds,
    expire_if_waiting,
    parse_message,
    waits_for,
)
from taskcast.uploads import Upload, media_type, object_refusal, parse_upload_key, result_key, upload_id_of, upload_key

NOW = 1_800_000_000


def upload(**changes) -> Upload:
    values = {"id": "u1", "tenant": "acme", "content_type": "text/csv", "size": 10, "max_size": 10,
              "url_expires_at": NOW + 600, "task_id": "t1"}
    return Upload(**{**values, **changes})


def test_keys_are_tenant_scoped_and_parse_back() -> None:
    assert upload_key("acme", "u1") == "uploads/acme/u1"
    assert parse_upload_key("uploads/acme/u1") == ("acme", "u1")
    assert parse_upload_key("uploads/team/a/u1") == ("team/a", "u1")
    assert parse_upload_key("results/acme/u1") is None
    assert parse_upload_key("uploads/u1") is None
    assert result_key("acme", "t1") == "results/acme/t1.json"
    assert upload_id_of({"upload_id": "u1"}) == "u1"
    assert upload_id_of({"upload_id": 3}) is None and upload_id_of("u1") is None


def test_the_object_must_be_what_was_declared() -> None:
    assert object_refusal(upload(), 10, "text/csv") is None
    assert object_refusal(upload(), 10, "TEXT/CSV; charset=utf-8") is None  # media type, without case
    assert "11 bytes; 10 bytes were declared" in object_refusal(upload(), 11, "text/csv")
    assert "image/png" in object_refusal(upload(), 10, "image/png")
    assert "untyped" in object_refusal(upload(), 10, None)
    unsized = upload(size=None, max_size=100)
    assert object_refusal(unsized, 100, "text/csv") is None
    assert "at most 100 bytes" in object_refusal(unsized, 101, "text/csv")
    assert media_type(" Text/Plain ;x=y") == "text/plain"


def test_results_leave_the_record_when_large_or_when_the_record_would_overflow() -> None:
    assert not goes_to_s3(100, 100, 256 * 1024)
    assert goes_to_s3(256 * 1024 + 1, 0, 256 * 1024)
    assert goes_to_s3(200 * 1024, ITEM_BUDGET_BYTES - 200 * 1024 + 1, 256 * 1024)


def s3_record(key: str, event_name: str = "ObjectCreated:Put", **extra) -> dict:
    return {"eventSource": "aws:s3", "eventName": event_name,
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": 3, **extra}}}


def test_s3_events_deadlines_and_test_events_are_told_apart() -> None:
    created = parse_message(json.dumps({"Records": [s3_record("uploads%2Facme%2Fa+b"),
                                                    s3_record("x", "ObjectRemoved:Delete")]}))
    assert created == [ObjectCreated("b", "uploads/acme/a b", 3, "ObjectCreated:Put")]
    assert parse_message(json.dumps({"Event": "s3:TestEvent", "Service": "Amazon S3"})) == []
    deadline = UploadDeadline("u1", "t1", NOW)
    assert parse_message(deadline.to_json()) == deadline


@pytest.mark.parametrize("body", ["nope", "[]", "{}", '{"Records": [{"eventSource": "aws:sqs"}]}',
                                  '{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}',
                                  '{"kind": "upload-deadline", "upload_id": "u1"}'])
def test_other_messages_are_refused(body: str) -> None:
    with pytest.raises(NotAnUploadMessage):
        parse_message(body)


def test_deadlines_fall_after_the_url_expires_and_come_back_within_sqs_limits() -> None:
    assert deadline_for(upload(), 300) == UploadDeadline("u1", "t1", NOW + 900)
    with pytest.raises(ValueError):
        deadline_for(upload(task_id=None), 300)
    assert delay_seconds(NOW + 10.2, NOW) == 11
    assert delay_seconds(NOW + 5000, NOW) == MAX_SQS_DELAY_S
    assert delay_seconds(NOW - 5, NOW) == 0


def test_only_the_waiting_task_of_the_same_tenant_is_started_or_expired() -> None:
    waiting = Task(id="t1", tenant="acme", type="digest", input={"upload_id": "u1"}, message="waiting for upload")
    assert waits_for(waiting, upload())
    assert not waits_for(None, upload())
    assert not waits_for(Task(id="t1", tenant="globex", type="digest", input={"upload_id": "u1"}), upload())
    assert not waits_for(Task(id="t1", tenant="acme", type="digest", input={"upload_id": "u2"}), upload())
    expired = expire_if_waiting(upload())(waiting)
    assert expired.status is Status.FAILED and expired.version == 2 and expired.message is None
    assert expired.error["type"].endswith("/upload-expired") and expired.error["status"] == 408
    assert datetime.fromtimestamp(NOW + 600, UTC).isoformat()[:19] in expired.error["detail"]
    assert expire_if_waiting(upload())(expired) is None


@given(st.lists(st.binary(max_size=50), max_size=20))
def test_the_digest_of_chunks_is_the_digest_of_the_whole(chunks: list[bytes]) -> None:
    whole = b"".join(chunks)
    digest = Digest()
    for chunk in chunks:
        digest.update(chunk)
    assert digest.sha256 == hashlib.sha256(whole).hexdigest()
    assert digest.size == len(whole)
    # Lines end at b"\n" only; a last line without one counts, nothing after a final one does.
    expected_lines = 0 if not whole else len(whole.split(b"\n")) - (1 if whole.endswith(b"\n") else 0)
    assert digest.lines == expected_lines


def test_progress_is_reported_every_ten_percent_and_never_at_the_end() -> None:
    assert progress_marks(5, 100, 0) is None
    assert progress_marks(19, 100, 0) == 10
    assert progress_marks(35, 100, 10) == 30
    assert progress_marks(100, 100, 90) is None
    assert progress_marks(0, 0, 0) is None
    reported: list[int] = []
    digest_object([b"x" * 10] * 10, 100, reported.append)
    assert reported == [10, 20, 30, 40, 50, 60, 70, 80, 90]


def test_the_traced_peak_sees_a_large_allocation_and_not_what_came_before() -> None:
    before = bytearray(4 * 1024 * 1024)
    with traced_peak() as peak:
        block = bytearray(2 * 1024 * 1024)
        del block
    assert 2 * 1024 * 1024 <= peak.bytes < 3 * 1024 * 1024
    del before


def signer(endpoint: str = "http://127.0.0.1:9000") -> object:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(signature_version="s3v4"),
                        aws_access_key_id="testing", aws_secret_access_key="secret-key")


def test_a_declared_size_presigns_a_put_and_no_size_a_post_policy() -> None:
    s3 = signer()
    target = presign_upload(s3, "bucket", upload(), NOW)
    assert target.method == "PUT" and target.expires_at == NOW + 600
    assert target.headers == {"Content-Type": "text/csv", "Content-Length": "10"}
    assert parse_qs(urlsplit(target.url).query)["X-Amz-Expires"] == ["600"]
    assert target.as_dict().keys() == {"method", "url", "headers"}
    post = presign_upload(s3, "bucket", upload(size=None, max_size=99), NOW)
    assert post.method == "POST" and post.fields["key"] == "uploads/acme/u1"
    assert post.as_dict().keys() == {"method", "url", "fields"}


def secrets_of(key: str) -> str | None:
    return {"testing": "secret-key"}.get(key)


def split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.path, parts.query


def test_s3s_presigned_checks_accept_what_botocore_signed_and_nothing_else() -> None:
    now = datetime.now(UTC).timestamp()
    url = presign_upload(signer(), "bucket", upload(id="a b+c", url_expires_at=int(now) + 600), int(now)).url
    path, query = split(url)
    headers = {"Host": "127.0.0.1:9000", "Content-Type": "text/csv", "Content-Length": "10"}
    assert check_presigned("PUT", path, query, headers, secrets_of, now) is None
    assert check_presigned("PUT", path, query, {**headers, "Content-Length": "11"}, secrets_of, now).code == (
        "SignatureDoesNotMatch")
    assert check_presigned("PUT", path, query, {**headers, "Content-Type": "text/plain"}, secrets_of, now).code == (
        "SignatureDoesNotMatch")
    assert check_presigned("GET", path, query, headers, secrets_of, now).code == "SignatureDoesNotMatch"
    assert check_presigned("PUT", path, query, {**headers, "Host": "127.0.0.1:9001"}, secrets_of, now).status == 403
    expired = check_presigned("PUT", path, query, headers, secrets_of, now + 601)
    assert (expired.status, expired.code, expired.message) == (403, "AccessDenied", "Request has expired")
    assert check_presigned("PUT", path, query, headers, lambda key: None, now).code == "InvalidAccessKeyId"
    assert check_presigned("PUT", path, "X-Amz-Signature=abc", headers, secrets_of, now).status == 400


def test_post_policy_conditions_as_s3_applies_them() -> None:
    form = signer().generate_presigned_post("bucket", "k", Fields={"Content-Type": "text/plain"},
                                            Conditions=[{"Content-Type": "text/plain"},
                                                        ["starts-with", "$key", "k"],
                                                        ["content-length-range", 2, 10]], ExpiresIn=60)
    fields = form["fields"]
    now = datetime.now(UTC).timestamp()
    assert check_post_policy("bucket", fields, 5, secrets_of, now) is None
    assert check_post_policy("other", fields, 5, secrets_of, now).message.endswith('["eq", "$bucket", "bucket"]')
    assert check_post_policy("bucket", fields, 11, secrets_of, now).code == "EntityTooLarge"
    assert check_post_policy("bucket", fields, 1, secrets_of, now).code == "EntityTooSmall"
    assert check_post_policy("bucket", {**fields, "key": "z"}, 5, secrets_of, now).status == 403
    assert check_post_policy("bucket", {**fields, "x-amz-signature": "0" * 64}, 5, secrets_of, now).code == (
        "SignatureDoesNotMatch")
    assert check_post_policy("bucket", {**fields, "x-ignore-me": "1"}, 5, secrets_of, now) is None
    assert check_post_policy("bucket", fields, 5, secrets_of, now + 61).message.endswith("Policy expired.")
    assert check_post_policy("bucket", {"key": "k"}, 5, secrets_of, now).status == 400
