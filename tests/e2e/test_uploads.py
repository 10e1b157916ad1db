"""Large payloads through S3 on the real local stack: a 50 MiB file PUT to its presigned URL starts its
task with no further call and is digested streamed; S3's refusals (size, type) come from the S3 front
as S3 sends them; uploads and results stay with their tenant; bodies over the inline limit answer 413."""

from __future__ import annotations

import hashlib
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from taskcast.local.testing import RunningStack
from taskcast_client.client import TaskcastClient
from taskcast_client.client_cli import main as submit_main
from tests.conftest import TENANTS
from tests.e2e.conftest import Api, statuses_until_terminal

MIB = 1024 * 1024


def write_file(path: Path, size: int) -> tuple[str, int]:
    """A file of ``size`` bytes of text lines, written in chunks; its SHA-256 and line count."""
    digest, lines, written = hashlib.sha256(), 0, 0
    line = b"".join(bytes([48 + (index % 75)]) for index in range(99)) + b"\n"  # 100-byte lines
    block = line * 10_000  # 1 MB
    with path.open("wb") as file:
        while written < size:
            chunk = block[: size - written]
            file.write(chunk)
            digest.update(chunk)
            lines += chunk.count(b"\n")
            written += len(chunk)
    return digest.hexdigest(), lines


def declare(api: Api, body: dict[str, Any]) -> requests.Response:
    return api.session.post(f"{api.base}/uploads", json=body, timeout=30)


def s3_error(answer: requests.Response) -> dict[str, str]:
    assert answer.headers["Content-Type"] == "application/xml", answer.text
    root = ET.fromstring(answer.content)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


def object_exists(stack: RunningStack, key: str) -> bool:
    try:
        stack.client("s3").head_object(Bucket=stack.resources["buckets"]["PayloadsBucket"], Key=key)
    except ClientError:
        return False
    return True


@pytest.mark.timeout(240)
def test_a_50_mib_upload_starts_its_task_by_itself_and_is_digested_streamed(
    stack: RunningStack, api: Api, websocket, tmp_path: Path
) -> None:
    size = 50 * MIB
    path = tmp_path / "big.txt"
    sha256, lines = write_file(path, size)
    answer = declare(api, {"content_type": "text/plain", "size": size, "task": {"type": "digest"}})
    assert answer.status_code == 201, answer.text
    upload = answer.json()
    task_id = upload["task"]["id"]
    assert answer.headers["Location"] == f"/tasks/{task_id}"
    assert upload["task"]["message"] == "waiting for upload"
    connection = websocket()
    connection.send(json.dumps({"action": "subscribe", "task_id": task_id, "since_version": 0}))

    with path.open("rb") as file:  # streamed by requests, as any client would send it
        put = requests.put(upload["url"], data=file, headers=upload["headers"], timeout=120)
    assert put.status_code == 200, put.text

    pushed = statuses_until_terminal(connection, task_id, timeout_s=180)  # no call of ours starts it
    assert [message["version"] for message in pushed] == list(range(1, len(pushed) + 1))
    assert [message["status"] for message in pushed][:2] == ["PENDING", "RUNNING"]
    assert pushed[-1]["status"] == "SUCCEEDED", pushed[-1]
    assert len(pushed) >= 4  # progress was reported while reading
    result = api.get(f"/tasks/{task_id}/result").json()
    assert (result["sha256"], result["size"], result["lines"]) == (sha256, size, lines)
    assert result["content_type"] == "text/plain"
    # The worker streamed the object: its peak of allocations stays a sliver of the file's size.
    assert 0 < result["peak_memory_bytes"] < 8 * MIB, result["peak_memory_bytes"]


@pytest.mark.parametrize(("data", "content_type"), [(b"x" * 2048, "text/plain"), (b"x" * 1024, "text/csv")])
def test_an_upload_of_another_size_or_type_is_refused_like_s3_does(
    stack: RunningStack, api: Api, data: bytes, content_type: str
) -> None:
    upload = declare(api, {"content_type": "text/plain", "size": 1024, "task": {"type": "digest"}}).json()
    put = requests.put(upload["url"], data=data, headers={"Content-Type": content_type}, timeout=30)
    assert put.status_code == 403
    error = s3_error(put)
    assert error["Code"] == "SignatureDoesNotMatch" and error["RequestId"]
    assert not object_exists(stack, f"uploads/acme/{upload['upload_id']}")
    monitor = api.get(f"/tasks/{upload['task']['id']}").json()
    assert (monitor["status"], monitor["message"]) == ("PENDING", "waiting for upload")


def test_another_tenant_can_neither_use_the_upload_nor_read_the_task(stack: RunningStack, api: Api) -> None:
    upload = declare(api, {"content_type": "text/plain", "size": 5}).json()
    assert requests.put(upload["url"], data=b"hello", headers=upload["headers"], timeout=30).status_code == 200
    own = api.create("digest", {"upload_id": upload["upload_id"]})
    assert api.wait_terminal(own["id"])["status"] == "SUCCEEDED"

    globex = Api(stack, TENANTS["globex"]["api_key"])
    refused = globex.session.post(f"{globex.base}/tasks", json={"type": "digest",
                                                                "input": {"upload_id": upload["upload_id"]}},
                                  timeout=30)
    assert refused.status_code == 400 and refused.json()["type"].endswith("/unknown-upload")
    assert globex.get(f"/tasks/{own['id']}/result").status_code == 404
    assert globex.get(f"/tasks/{own['id']}").status_code == 404


def test_a_300_kib_task_body_is_413_naming_post_uploads(api: Api) -> None:
    body = json.dumps({"type": "sleep", "input": {"blob": "x" * 300 * 1024}})
    answer = api.session.post(f"{api.base}/tasks", data=body, headers={"Content-Type": "application/json"},
                              timeout=30)
    assert answer.status_code == 413
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert "POST /uploads" in answer.json()["detail"]


def test_the_client_uploads_a_file_with_its_task_and_follows_it(stack: RunningStack, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(b"a,b\n1,2\n3,4\n")
    client = TaskcastClient(stack.http_url, TENANTS["acme"]["api_key"])
    handle = client.submit_file("digest", path)
    assert handle.monitor["status"] == "PENDING"
    outcome = handle.wait(timeout=60)
    assert outcome.succeeded and outcome.transport == "websocket"
    assert outcome.result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (outcome.result["lines"], outcome.result["content_type"]) == (3, "text/csv")

    upload_id = client.upload(path, content_type="text/plain")
    again = client.submit("digest", {"upload_id": upload_id}).wait(timeout=60)
    assert again.result["sha256"] == outcome.result["sha256"] and again.result["content_type"] == "text/plain"


def test_the_submit_command_uploads_with_file(stack: RunningStack, tmp_path: Path, capsys) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"one\ntwo")
    code = submit_main(["digest", "--file", os.fspath(path), "--wait", "--timeout", "60", "--url", stack.http_url,
                        "--api-key", TENANTS["acme"]["api_key"]])
    output = capsys.readouterr()
    assert code == 0, output.err
    assert json.loads(output.out)["sha256"] == hashlib.sha256(b"one\ntwo").hexdigest()
