"""External workers' uploaded results through the REST handler on moto: the presigned PUT the token gets, the
key named at succeed (its own task's only, and only once the object is there), and the result served as a large
Lambda result is, by 303 to a presigned GET."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests

from taskcast.settings import Settings
from taskcast_client import TaskcastError, WorkerClient
from tests.functional import test_external_workers as external
from tests.functional.rest_harness import RestHarness
from tests.functional.test_external_workers import HandlerAdapter, handed_off, report

BUCKET = "taskcast-payloads"
# The external workers' fixtures: their queues, and the REST harness with the external job "transcode".
queues = external.queues
api = external.api
RESULT = {"frames": [{"n": n, "label": "cat"} for n in range(2000)]}


@pytest.fixture(autouse=True)
def bucket(aws_mock: None, settings: Settings) -> str:  # noqa: ARG001
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    assert settings.results_bucket == BUCKET
    return BUCKET


def ask(api: RestHarness, token: str, body: Any = None) -> Any:
    return report(api, token, "result-upload", body)


def put(upload: dict[str, Any], data: bytes) -> None:
    # moto answers presigned URLs in-process; the local S3 front (tests/e2e) checks the signature as S3 does.
    answer = requests.put(upload["upload_url"], data=data, headers=upload["headers"], timeout=10)
    assert answer.status_code == 200, answer.text


def monitor(api: RestHarness, task_id: str) -> dict[str, Any]:
    return api.request("GET", f"/tasks/{task_id}").json()


def test_a_worker_uploads_its_result_and_the_task_serves_it_like_a_large_result(
    api: RestHarness, queues: dict[str, str]
) -> None:
    job = handed_off(api, queues)
    asked = ask(api, job["token"])
    assert asked.status == 201, asked.text
    upload = asked.json()
    assert upload["method"] == "PUT" and upload["headers"] == {"Content-Type": "application/json"}
    assert upload["result_key"].startswith(f"results/acme/{job['task_id']}/")
    assert upload["max_size"] == api.settings.max_result_upload_bytes == 100 * 1024 * 1024
    assert asked.header("Cache-Control") == "no-store"
    signed = {key: values[0] for key, values in parse_qs(urlsplit(upload["upload_url"]).query).items()}
    assert signed["X-Amz-Expires"] == "900" and "content-type" in signed["X-Amz-SignedHeaders"]
    assert urlsplit(upload["upload_url"]).path.endswith(upload["result_key"])
    assert job["token"] not in upload["upload_url"]
    assert monitor(api, job["task_id"])["status"] == "RUNNING"  # asking counts as the first report

    data = json.dumps(RESULT).encode()
    put(upload, data)
    done = report(api, job["token"], "succeed", {"result_key": upload["result_key"]})
    assert done.json() == {"status": "SUCCEEDED", "version": 3, "cancel_requested": False}, done.text

    status = api.request("GET", f"/tasks/{job['task_id']}")
    assert status.status == 303 and status.header("Location") == f"/tasks/{job['task_id']}/result"
    result = api.request("GET", f"/tasks/{job['task_id']}/result")
    assert result.status == 303
    fetched = requests.get(result.header("Location") or "", timeout=10)
    assert fetched.status_code == 200 and fetched.content == data
    assert api.request("GET", f"/tasks/{job['task_id']}/result", tenant="globex").status == 404
    late = ask(api, job["token"])
    assert late.status == 410 and late.json()["task_status"] == "SUCCEEDED"


def test_a_key_never_uploaded_is_result_missing_and_the_task_keeps_running(
    api: RestHarness, queues: dict[str, str]
) -> None:
    job = handed_off(api, queues)
    upload = ask(api, job["token"]).json()
    missing = report(api, job["token"], "succeed", {"result_key": upload["result_key"]})
    assert missing.status == 400 and missing.json()["type"].endswith("/result-missing"), missing.text
    assert (monitor(api, job["task_id"])["status"], monitor(api, job["task_id"])["version"]) == ("RUNNING", 2)
    put(upload, b"[1, 2, 3]")  # the worker can still upload and succeed
    assert report(api, job["token"], "succeed", {"result_key": upload["result_key"]}).status == 200
    assert monitor(api, job["task_id"])["status"] == "SUCCEEDED"


def test_keys_of_other_tasks_or_made_up_are_refused_and_change_nothing(
    api: RestHarness, queues: dict[str, str]
) -> None:
    mine, theirs = handed_off(api, queues), handed_off(api, queues)
    their_upload = ask(api, theirs["token"]).json()
    put(their_upload, b'"theirs"')
    prefix = f"results/acme/{mine['task_id']}/"
    suffix = their_upload["result_key"].rsplit("/", 1)[1]
    for key in (
        their_upload["result_key"],
        f"results/acme/{mine['task_id']}.json",  # the Lambda worker's key
        f"{prefix}../{theirs['task_id']}/{suffix}",
        f"{prefix}{suffix}/../../{theirs['task_id']}/{suffix}",
        f"results/globex/{mine['task_id']}/{suffix}",
        f"uploads/acme/{suffix}",
        f"{prefix}made-up.json",
        "",
    ):
        refused = report(api, mine["token"], "succeed", {"result_key": key})
        assert refused.status == 400 and refused.json()["type"].endswith("/result-key-refused"), (key, refused.text)
    assert monitor(api, mine["task_id"])["version"] == 1  # nothing was written
    assert monitor(api, theirs["task_id"])["status"] == "RUNNING"


@pytest.mark.parametrize(
    "body",
    [{"result": 1, "result_key": "results/acme/x/y.json"}, {}, {"result_key": None}, {"result_key": 7}],
)
def test_succeed_takes_exactly_one_of_result_and_result_key(
    api: RestHarness, queues: dict[str, str], body: dict[str, Any]
) -> None:
    job = handed_off(api, queues)
    answer = report(api, job["token"], "succeed", body)
    assert answer.status == 400 and answer.json()["type"].endswith("/invalid-request"), answer.text
    assert monitor(api, job["task_id"])["version"] == 1


def test_an_object_over_the_limit_or_not_json_is_refused(api: RestHarness, queues: dict[str, str]) -> None:
    job = handed_off(api, queues)
    upload = ask(api, job["token"]).json()
    api.deps.external.max_result_upload_bytes = 8
    put(upload, b'"123456789"')
    too_large = report(api, job["token"], "succeed", {"result_key": upload["result_key"]})
    assert too_large.status == 400 and too_large.json()["type"].endswith("/result-too-large"), too_large.text
    # S3 enforces the signed type; an object of another type (written past it) is refused all the same.
    other = ask(api, job["token"]).json()
    boto3.client("s3").put_object(Bucket=BUCKET, Key=other["result_key"], Body=b"<x/>", ContentType="text/xml")
    not_json = report(api, job["token"], "succeed", {"result_key": other["result_key"]})
    assert not_json.status == 400 and not_json.json()["type"].endswith("/result-not-json"), not_json.text
    assert monitor(api, job["task_id"])["status"] == "RUNNING"


@pytest.mark.parametrize(
    "body", [{"content_type": "text/csv"}, {"content_type": "application/json\r\nX: y"}, {"size": 5}]
)
def test_a_result_upload_for_anything_but_json_is_a_400(
    api: RestHarness, queues: dict[str, str], body: dict[str, Any]
) -> None:
    job = handed_off(api, queues)
    answer = ask(api, job["token"], body)
    assert answer.status == 400, answer.text
    assert monitor(api, job["task_id"])["version"] == 1


def test_a_result_upload_with_a_json_type_signs_that_type(api: RestHarness, queues: dict[str, str]) -> None:
    job = handed_off(api, queues)
    upload = ask(api, job["token"], {"content_type": "application/json; charset=utf-8"}).json()
    assert upload["headers"] == {"Content-Type": "application/json; charset=utf-8"}
    put(upload, b"{}")
    assert report(api, job["token"], "succeed", {"result_key": upload["result_key"]}).status == 200


def test_result_upload_refuses_forged_tokens_alike_and_ended_tasks_with_410(
    api: RestHarness, queues: dict[str, str]
) -> None:
    first, second = handed_off(api, queues), handed_off(api, queues)
    first_secret = first["token"].split(".", 1)[1]
    answers = [ask(api, token) for token in (f"tt_{second['task_id']}.{'A' * 43}",
                                             f"tt_{second['task_id']}.{first_secret}", "not-a-token")]
    assert {answer.status for answer in answers} == {404} and len({answer.text for answer in answers}) == 1
    assert api.request("DELETE", f"/tasks/{first['task_id']}").status == 202
    cancelled = ask(api, first["token"])
    assert cancelled.status == 410 and cancelled.json()["cancel_requested"] is True
    refused = report(api, first["token"], "succeed", {"result_key": f"results/acme/{first['task_id']}/x.json"})
    assert refused.status == 410


def test_the_python_worker_client_uploads_and_succeeds_with_the_key(
    api: RestHarness, queues: dict[str, str]
) -> None:
    session = requests.Session()
    session.mount("http://taskcast.test", HandlerAdapter(api))  # S3's URLs go through requests to moto
    job = handed_off(api, queues)
    worker = WorkerClient(job["token"], "http://taskcast.test", session=session)
    key = worker.upload_result(RESULT)
    assert key.startswith(f"results/acme/{job['task_id']}/")
    assert worker.succeed(result_key=key).status == "SUCCEEDED"
    location = api.request("GET", f"/tasks/{job['task_id']}/result").header("Location") or ""
    assert requests.get(location, timeout=10).json() == RESULT

    raw = handed_off(api, queues)
    raw_worker = WorkerClient(raw["token"], "http://taskcast.test", session=session)
    raw_key = raw_worker.upload_result(b'{"already": "encoded"}')
    assert raw_worker.succeed(result_key=raw_key).version == 3
    with pytest.raises(TaskcastError) as missing:
        WorkerClient(handed_off(api, queues)["token"], "http://taskcast.test", session=session).succeed(
            result_key=f"results/acme/{raw['task_id']}/{'A' * 22}.json"
        )
    assert missing.value.status == 400
    with pytest.raises(ValueError, match="exactly one"):
        worker.succeed({"a": 1}, result_key=key)
