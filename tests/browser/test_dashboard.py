"""The dashboard in headless Chromium against a real local stack: push first, polling when the WebSocket is gone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api").expect

FINISH_S = 30_000  # ms: generous bound for a 2 s task on a busy machine; waits end as soon as it holds

# Records every (task id, status, version) a row shows as the DOM changes, to check order and gaps.
RECORD_ROW_CHANGES = """
() => {
  window.rowHistory = [];
  const last = new Map();
  const note = (row) => {
    const seen = [row.dataset.taskId, row.dataset.status, Number(row.dataset.version)];
    if (last.get(seen[0]) === seen[2]) return;  // one change can be reported by two mutation records
    last.set(seen[0], seen[2]);
    window.rowHistory.push(seen);
  };
  new MutationObserver((changes) => {
    for (const change of changes) {
      const row = change.target.closest && change.target.closest("tr[data-task-id]");
      if (change.type === "attributes" && row === change.target) note(row);
      for (const node of change.addedNodes || []) if (node.matches && node.matches("tr[data-task-id]")) note(node);
    }
  }).observe(document.querySelector("#task-rows"), {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-version"],
  });
}
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    from taskcast.local.testing import running_stack

    with running_stack() as running:
        yield running


def submit(page: Any, job_type: str, job_input: str) -> Any:
    """Submit through the form; the new row (newest first) once it appears."""
    before = page.locator("tr[data-task-id]").count()
    page.select_option("#job-type", job_type)
    page.fill("#job-input", job_input)
    page.click("#submit")
    expect(page.locator("tr[data-task-id]")).to_have_count(before + 1)
    return page.locator("tr[data-task-id]").first


def requests_for(stack: Any, task_id: str) -> list[tuple[str, str]]:
    return [(e["method"], e["path"]) for e in stack.request_log if task_id in e["path"]]


def test_a_task_is_followed_by_push_with_no_status_polls(stack: Any, page: Any) -> None:
    page.goto(f"{stack.http_url}/")
    expect(page.locator("#api-key")).to_have_value(stack.api_key)  # prefilled from the stack's config
    expect(page.locator("#transport")).to_have_text("websocket", timeout=FINISH_S)
    page.evaluate(RECORD_ROW_CHANGES)

    row = submit(page, "sleep", '{"seconds": 2, "steps": 2}')
    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=FINISH_S)
    task_id = row.get_attribute("data-task-id")

    expect(row).to_have_attribute("data-transport", "websocket")
    result = page.locator(f"tr[data-detail-for='{task_id}'] pre")
    expect(result).to_have_attribute("data-kind", "result", timeout=FINISH_S)
    expect(result).to_contain_text('"slept_s": 2')

    seen = [(status, version) for tid, status, version in page.evaluate("window.rowHistory") if tid == task_id]
    versions = [version for _, version in seen]
    assert versions == list(range(1, versions[-1] + 1)), seen  # every version, in order, none skipped
    assert ("RUNNING", 2) in seen and seen[-1][0] == "SUCCEEDED"
    assert row.get_attribute("data-version") == str(versions[-1])

    calls = requests_for(stack, task_id)
    assert ("GET", f"/tasks/{task_id}") not in calls, calls  # not a single status poll
    assert calls.count(("GET", f"/tasks/{task_id}/result")) == 1, calls
    assert page.errors == []


def test_the_websocket_connects_with_a_ticket_never_with_the_key(stack: Any, page: Any) -> None:
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    stack.clear_request_log()
    page.goto(f"{stack.http_url}/")
    expect(page.locator("#transport")).to_have_text("websocket", timeout=FINISH_S)

    assert len(opened) == 1 and "?ticket=wst_" in opened[0], opened
    assert stack.api_key not in opened[0] and "token=" not in opened[0]
    tickets = [e for e in stack.request_log if (e["method"], e["path"]) == ("POST", "/ws-tickets")]
    assert [e["status"] for e in tickets] == [201]


@pytest.fixture
def websocket_port_closed(stack: Any) -> Iterator[None]:
    stack.stop_websocket()
    try:
        yield
    finally:
        stack.start_websocket()


def test_without_the_websocket_the_dashboard_polls_to_the_end(
    stack: Any, page: Any, websocket_port_closed: None
) -> None:
    page.goto(f"{stack.http_url}/")
    expect(page.locator("#transport")).to_have_text("polling", timeout=FINISH_S)

    row = submit(page, "sleep", '{"seconds": 2, "steps": 2}')
    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=FINISH_S)
    task_id = row.get_attribute("data-task-id")

    expect(row).to_have_attribute("data-transport", "polling")
    expect(page.locator(f"tr[data-detail-for='{task_id}'] pre")).to_contain_text('"slept_s": 2')
    expect(page.locator("#transport")).to_have_text("polling")
    calls = requests_for(stack, task_id)
    assert ("GET", f"/tasks/{task_id}") in calls, calls
    assert page.errors == []


def test_a_running_task_can_be_cancelled_and_a_failure_is_readable(stack: Any, page: Any) -> None:
    page.goto(f"{stack.http_url}/")
    expect(page.locator("#transport")).to_have_text("websocket", timeout=FINISH_S)

    running = submit(page, "sleep", '{"seconds": 60, "steps": 60}')
    expect(running).to_have_attribute("data-status", "RUNNING", timeout=FINISH_S)
    running.locator("[data-action=cancel]").click()
    expect(running).to_have_attribute("data-status", "CANCELLED", timeout=FINISH_S)
    cancelled_id = running.get_attribute("data-task-id")
    expect(page.locator(f"tr[data-detail-for='{cancelled_id}'] pre")).to_have_attribute("data-kind", "error")
    expect(running.locator("[data-action=cancel]")).to_be_hidden()

    failed = submit(page, "fail", '{"message": "disk full"}')
    expect(failed).to_have_attribute("data-status", "FAILED", timeout=FINISH_S)
    failed_id = failed.get_attribute("data-task-id")
    expect(page.locator(f"tr[data-detail-for='{failed_id}'] pre")).to_contain_text("disk full")
    assert page.errors == []


def test_bad_input_is_explained_without_a_request(stack: Any, page: Any) -> None:
    page.goto(f"{stack.http_url}/")
    expect(page.locator("#transport")).to_have_text("websocket", timeout=FINISH_S)  # its ticket's POST is done
    before = len(stack.request_log)

    page.fill("#job-input", "{not json")
    page.click("#submit")

    expect(page.locator("#error")).to_contain_text("not valid JSON")
    assert [e for e in stack.request_log[before:] if e["method"] == "POST"] == []

    page.fill("#job-input", '{"seconds": "soon"}')
    page.click("#submit")
    expect(page.locator("#error")).to_contain_text("Not accepted")
    expect(page.locator("tr[data-task-id]")).to_have_count(0)


def test_after_a_drop_it_polls_then_resumes_push_without_going_backwards(stack: Any, page: Any) -> None:
    page.goto(f"{stack.http_url}/")
    expect(page.locator("#transport")).to_have_text("websocket", timeout=FINISH_S)
    page.evaluate(RECORD_ROW_CHANGES)
    row = submit(page, "sleep", '{"seconds": 40, "steps": 40}')
    expect(row).to_have_attribute("data-version", "3", timeout=FINISH_S)
    task_id = row.get_attribute("data-task-id")

    stack.stop_websocket()
    try:
        expect(page.locator("#transport")).to_have_text("polling", timeout=FINISH_S)
        expect(row).to_have_attribute("data-transport", "polling", timeout=FINISH_S)
    finally:
        stack.start_websocket()
    expect(page.locator("#transport")).to_have_text("websocket", timeout=FINISH_S)  # reconnected by itself
    expect(row).to_have_attribute("data-transport", "websocket", timeout=FINISH_S)  # resumed by since_version

    row.locator("[data-action=cancel]").click()
    expect(row).to_have_attribute("data-status", "CANCELLED", timeout=FINISH_S)
    versions = [version for tid, _, version in page.evaluate("window.rowHistory") if tid == task_id]
    assert versions == sorted(set(versions)), versions  # never backwards, never twice
    assert page.errors == []
