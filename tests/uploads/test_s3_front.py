"""The local S3 front over moto's server: presigned requests are held to S3's rules (signature over
the signed headers, expiry, POST policy conditions) and answered with S3's XML errors; everything
else reaches moto unchanged."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from taskcast.local.s3_front import S3Front
from taskcast.local.services import FAKE_CREDENTIALS, MotoService
from tests.support.shared import running_moto

BUCKET = "front-test"


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoService]:
    with running_moto() as service:
        yield service


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def front(moto: MotoService, clock: Clock) -> Iterator[S3Front]:
    credentials = {FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
    with S3Front(moto.url, credentials, clock=clock) as running:
        yield running


def client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(signature_version="s3v4"),
                        aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing")


@pytest.fixture
def s3(front: S3Front) -> Any:
    """A client of the front, as the handlers have one; the bucket exists."""
    s3 = client(front.url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    return s3


def put_url(s3: Any, key: str, content_type: str, size: int, expires_in: int = 60) -> str:
    return s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": key, "ContentType": content_type,
                                                          "ContentLength": size}, ExpiresIn=expires_in)


def s3_error(answer: requests.Response) -> dict[str, str]:
    assert answer.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(answer.content)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


def test_a_presigned_put_as_signed_reaches_moto(s3: Any) -> None:
    answer = requests.put(put_url(s3, "ok", "text/plain", 5), data=b"hello", headers={"Content-Type": "text/plain"},
                          timeout=10)
    assert answer.status_code == 200, answer.text
    stored = s3.get_object(Bucket=BUCKET, Key="ok")  # header-signed: forwarded as it is
    assert stored["Body"].read() == b"hello" and stored["ContentType"] == "text/plain"


@pytest.mark.parametrize(("data", "content_type"), [(b"hello, world", "text/plain"), (b"hello", "text/csv")])
def test_another_size_or_type_than_signed_is_403_signature_does_not_match(
    s3: Any, data: bytes, content_type: str
) -> None:
    answer = requests.put(put_url(s3, "refused", "text/plain", 5), data=data, headers={"Content-Type": content_type},
                          timeout=10)
    assert answer.status_code == 403
    error = s3_error(answer)
    assert error["Code"] == "SignatureDoesNotMatch"
    assert error["Message"].startswith("The request signature we calculated does not match")
    assert "content-length;content-type;host" in error["CanonicalRequest"]
    assert error["RequestId"] and error["HostId"] and answer.headers["x-amz-request-id"] == error["RequestId"]
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=BUCKET, Key="refused")


def test_an_expired_url_is_403_access_denied_request_has_expired(s3: Any, clock: Clock) -> None:
    url = put_url(s3, "late", "text/plain", 2, expires_in=5)
    clock.offset = 6
    answer = requests.put(url, data=b"hi", headers={"Content-Type": "text/plain"}, timeout=10)
    assert answer.status_code == 403
    error = s3_error(answer)
    assert (error["Code"], error["Message"], error["X-Amz-Expires"]) == ("AccessDenied", "Request has expired", "5")
    assert error["Expires"] < error["ServerTime"]


def test_a_tampered_url_and_an_unknown_key_are_refused(s3: Any) -> None:
    url = put_url(s3, "tampered", "text/plain", 2)
    answer = requests.put(url.replace("/tampered?", "/other?"), data=b"hi", headers={"Content-Type": "text/plain"},
                          timeout=10)
    assert answer.status_code == 403 and s3_error(answer)["Code"] == "SignatureDoesNotMatch"
    stranger = client(s3.meta.endpoint_url)
    stranger._request_signer._credentials.access_key = "AKIASTRANGER"  # noqa: SLF001 - a key moto would accept
    url = stranger.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "ok"}, ExpiresIn=60)
    assert s3_error(requests.get(url, timeout=10))["Code"] == "InvalidAccessKeyId"


def test_a_presigned_get_serves_the_object_and_expires_too(s3: Any, clock: Clock) -> None:
    s3.put_object(Bucket=BUCKET, Key="result.json", Body=b'{"big": true}', ContentType="application/json")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "result.json"}, ExpiresIn=30)
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"big": True}
    assert answer.headers["Content-Type"] == "application/json"
    clock.offset = 31
    assert requests.get(url, timeout=10).status_code == 403


def test_cors_preflight_reaches_moto_and_refusals_are_readable_by_browsers(s3: Any) -> None:
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["PUT"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"]}]})
    url = put_url(s3, "cors", "text/plain", 2)
    origin = {"Origin": "http://127.0.0.1:3000"}
    preflight = requests.options(url, headers={**origin, "Access-Control-Request-Method": "PUT",
                                               "Access-Control-Request-Headers": "content-type"}, timeout=10)
    assert preflight.status_code == 200 and "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    refused = requests.put(url, data=b"abc", headers={**origin, "Content-Type": "text/plain"}, timeout=10)
    assert refused.status_code == 403 and refused.headers["Access-Control-Allow-Origin"] == "*"


def post_form(s3: Any, key: str, content_type: str, max_size: int, expires_in: int = 60) -> dict[str, Any]:
    return s3.generate_presigned_post(BUCKET, key, Fields={"Content-Type": content_type},
                                      Conditions=[{"Content-Type": content_type},
                                                  ["content-length-range", 0, max_size]], ExpiresIn=expires_in)


def test_a_post_policy_upload_within_its_conditions_reaches_moto(s3: Any) -> None:
    form = post_form(s3, "posted", "text/plain", 100)
    answer = requests.post(form["url"], data=form["fields"], files={"file": ("a.txt", b"x" * 100)}, timeout=10)
    assert answer.status_code in (200, 201, 204), answer.text
    assert s3.get_object(Bucket=BUCKET, Key="posted")["Body"].read() == b"x" * 100


def test_post_policy_refusals_are_s3s(s3: Any, clock: Clock) -> None:
    form = post_form(s3, "posted-refused", "text/plain", 10)
    too_large = requests.post(form["url"], data=form["fields"], files={"file": ("a", b"x" * 11)}, timeout=10)
    assert too_large.status_code == 400
    error = s3_error(too_large)
    assert (error["Code"], error["ProposedSize"], error["MaxSizeAllowed"]) == ("EntityTooLarge", "11", "10")

    other_type = requests.post(form["url"], data={**form["fields"], "Content-Type": "text/csv"},
                               files={"file": ("a", b"x")}, timeout=10)
    assert other_type.status_code == 403
    assert s3_error(other_type)["Message"] == (
        'Invalid according to Policy: Policy Condition failed: ["eq", "$Content-Type", "text/plain"]')

    extra = requests.post(form["url"], data={**form["fields"], "acl": "public-read"}, files={"file": ("a", b"x")},
                          timeout=10)
    assert s3_error(extra)["Message"] == "Invalid according to Policy: Extra input fields: acl"

    clock.offset = 61
    expired = requests.post(form["url"], data=form["fields"], files={"file": ("a", b"x")}, timeout=10)
    assert expired.status_code == 403
    assert s3_error(expired)["Message"] == "Invalid according to Policy: Policy expired."
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=BUCKET, Key="posted-refused")
