"""The dashboard uploads a file straight to S3 (the local S3 front) and follows the task it started;
a refused upload shows S3's answer and cancels the task instead of leaving it waiting."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from taskcast.local.testing import RunningStack
from tests.browser.conftest import browser, chromium_path, page  # noqa: F401 - fixtures used by these tests
from tests.conftest import TENANTS

pytestmark = [pytest.mark.browser]
expect = pytest.importorskip("playwright.sync_api").expect
FINISH_MS = 60_000


def open_dashboard(stack: RunningStack, page: Any) -> None:  # noqa: F811
    page.goto(f"{stack.http_url}/")
    page.fill("#api-key", TENANTS["acme"]["api_key"])
    page.click("#save-key")
    expect(page.locator("#transport")).to_have_text("websocket", timeout=FINISH_MS)


def upload(page: Any, path: Path) -> Any:  # noqa: F811
    before = page.locator("tr[data-task-id]").count()
    page.select_option("#job-type", "digest")
    expect(page.locator("#job-input")).to_be_hidden()
    page.set_input_files("#job-file", str(path))
    page.click("#submit")
    expect(page.locator("tr[data-task-id]")).to_have_count(before + 1)
    return page.locator("tr[data-task-id]").first


def test_a_file_is_uploaded_to_s3_and_its_task_followed_to_the_digest(
    stack: RunningStack, page: Any, tmp_path: Path  # noqa: F811
) -> None:
    path = tmp_path / "report.csv"
    data = b"id,value\n" + b"".join(b"%d,%d\n" % (index, index * index) for index in range(20_000))
    path.write_bytes(data)
    open_dashboard(stack, page)

    row = upload(page, path)

    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=FINISH_MS)
    expect(row).to_have_attribute("data-transport", "websocket")
    task_id = row.get_attribute("data-task-id")
    result = page.locator(f"tr[data-detail-for='{task_id}'] pre")
    expect(result).to_have_attribute("data-kind", "result", timeout=FINISH_MS)
    expect(result).to_contain_text(hashlib.sha256(data).hexdigest())
    expect(result).to_contain_text('"lines": 20001')
    expect(result).to_contain_text('"content_type": "text/csv"')
    assert page.errors == []


def test_a_refused_upload_shows_s3s_answer_and_cancels_the_task(
    stack: RunningStack, page: Any, tmp_path: Path  # noqa: F811
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"some notes\n")
    open_dashboard(stack, page)

    def change_type(route: Any) -> None:
        if route.request.method == "PUT":
            route.continue_(headers={**route.request.headers, "content-type": "application/pdf"})
        else:
            route.continue_()

    page.route("**/uploads/acme/**", change_type)  # the presigned URL names the upload's key
    row = upload(page, path)

    expect(page.locator("#error")).to_contain_text("Upload refused: S3 answered 403 SignatureDoesNotMatch",
                                                   timeout=FINISH_MS)
    expect(row).to_have_attribute("data-status", "CANCELLED", timeout=FINISH_MS)
