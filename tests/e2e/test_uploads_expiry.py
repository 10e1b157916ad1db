"""Uploads with short lifetimes on a real local stack: an expired URL is refused as S3 refuses it, a
task whose upload never comes fails on its own, and a result over the (lowered) inline limit answers
303 to a presigned GET that works and expires."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
import requests

from taskcast.local.testing import RunningStack, running_stack
from taskcast_client.client import TaskcastClient
from tests.conftest import TENANTS
from tests.e2e.conftest import Api, statuses_until_terminal

URL_TTL_S = 2
GRACE_S = 1


@pytest.fixture(scope="module")
def short_stack() -> Iterator[RunningStack]:
    environment = {"TASKCAST_UPLOAD_URL_TTL": str(URL_TTL_S), "TASKCAST_UPLOAD_GRACE": str(GRACE_S),
                   "TASKCAST_RESULT_INLINE_LIMIT": "64"}
    with running_stack(tenants=TENANTS, environment=environment) as running:
        yield running


@pytest.fixture
def short_api(short_stack: RunningStack) -> Api:
    return Api(short_stack, TENANTS["acme"]["api_key"])


def test_an_upload_that_never_comes_fails_its_task_and_its_url_is_refused_after(
    short_stack: RunningStack, short_api: Api, websocket
) -> None:
    answer = short_api.session.post(f"{short_api.base}/uploads", timeout=30, json={
        "content_type": "text/plain", "size": 3, "task": {"type": "digest"}})
    upload = answer.json()
    connection = websocket(stack_=short_stack)
    connection.send(json.dumps({"action": "subscribe", "task_id": upload["task"]["id"], "since_version": 0}))

    pushed = statuses_until_terminal(connection, upload["task"]["id"], timeout_s=60)

    assert [message["status"] for message in pushed] == ["PENDING", "FAILED"]
    assert pushed[-1]["error"]["type"].endswith("/upload-expired")
    late = requests.put(upload["url"], data=b"abc", headers=upload["headers"], timeout=30)
    assert late.status_code == 403
    error = {child.tag: child.text for child in ET.fromstring(late.content)}
    assert (error["Code"], error["Message"]) == ("AccessDenied", "Request has expired")


def test_a_large_result_answers_303_to_a_presigned_get_that_works(short_stack: RunningStack, short_api: Api) -> None:
    upload = short_api.session.post(f"{short_api.base}/uploads", timeout=30, json={
        "content_type": "text/plain", "size": 4, "task": {"type": "digest"}}).json()
    assert requests.put(upload["url"], data=b"1\n2\n", headers=upload["headers"], timeout=30).status_code == 200
    task_id = upload["task"]["id"]
    assert short_api.wait_terminal(task_id, within_s=60)["status"] == "SUCCEEDED"

    answer = short_api.get(f"/tasks/{task_id}/result")
    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert location.startswith("http://127.0.0.1:") and "X-Amz-Signature=" in location
    fetched = requests.get(location, timeout=30)  # no API key: the URL carries its own signature
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "application/json"
    assert fetched.json()["lines"] == 2 and fetched.json()["upload_id"] == upload["upload_id"]
    globex = Api(short_stack, TENANTS["globex"]["api_key"])
    assert globex.get(f"/tasks/{task_id}/result").status_code == 404
    client = TaskcastClient(short_stack.http_url, TENANTS["acme"]["api_key"])
    assert client.task(task_id).result() == fetched.json()  # the client follows the 303 without its key
