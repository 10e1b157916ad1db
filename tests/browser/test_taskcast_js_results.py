"""taskcast.js reads results in headless Chromium: a large result's 303 to a presigned URL of the local S3 front
is followed without the API key, and ``get`` answers the monitor of a succeeded task, not its result."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from taskcast.local.testing import RunningStack, running_stack
from taskcast_client import WorkerClient
from tests.browser.test_taskcast_js import open_harness
from tests.conftest import TENANTS
from tests.e2e.conftest import Api
from tests.e2e.support.templates import SUPPORT_DIR
from tests.e2e.test_external_workers import take_job

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def external_stack() -> Iterator[RunningStack]:
    environment = {"TASKCAST_JOB_MODULES": "external_jobs", "TASKCAST_LOCAL_FUNCTION_PYTHONPATH": str(SUPPORT_DIR)}
    with running_stack(tenants=TENANTS, environment=environment) as running:
        yield running


def test_a_large_result_is_read_from_s3_without_the_key(external_stack: RunningStack, page: Any) -> None:
    key = TENANTS["acme"]["api_key"]
    api = Api(external_stack, key)
    task = api.create("e2e-transcode", {"video": "cat.mp4"})
    worker = WorkerClient(take_job(external_stack, task["id"])["token"], external_stack.http_url)
    result = {"frames": ["x" * 100] * 5000}  # 500 KB: kept in S3, answered by a 303
    worker.succeed(result_key=worker.upload_result(result))
    assert api.get(f"/tasks/{task['id']}/result").status_code == 303

    sent_to_s3: list[dict[str, str]] = []
    page.on("request", lambda request: sent_to_s3.append(request.all_headers())
            if request.url.startswith(external_stack.s3_url) else None)
    open_harness(page, external_stack, {"apiKey": key})
    fetched = page.evaluate("(id) => tc.result(id)", task["id"])
    assert fetched == result
    assert sent_to_s3 and all("authorization" not in headers for headers in sent_to_s3), sent_to_s3

    monitor = page.evaluate("(id) => tc.get(id)", task["id"])
    last = api.get(f"/tasks/{task['id']}/events").json()[-1]
    assert (monitor["id"], monitor["status"], monitor["version"]) == (task["id"], "SUCCEEDED", last["version"])
    assert page.errors == []
