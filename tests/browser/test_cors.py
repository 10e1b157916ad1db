"""A page served from another origin calls the local stack's REST API in real Chromium: allowed when the
stack's ``CorsAllowedOrigins`` names that origin (preflight, Authorization header, readable Location, a
readable 401), blocked by the browser when it does not. The dashboard itself, hosted on its own site as a
deployed dashboard would be, follows a task over the stack's API and WebSocket."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api").expect

PAGE = b"<!doctype html><title>another origin</title><p>a page of another site</p>"
DASHBOARD = Path(__file__).resolve().parents[2] / "client_demo"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


class _PageHandler(BaseHTTPRequestHandler):
    """A plain page at ``/``; the dashboard's files at ``/dashboard/`` (its config.js is absent: not our stack)."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        name = "index.html" if path == "/dashboard/" else path.removeprefix("/dashboard/")
        file = DASHBOARD / name
        if path == "/":
            body, kind = PAGE, "text/html"
        elif path.startswith("/dashboard/") and file.suffix in TYPES and file.is_file() and "/" not in name:
            body, kind = file.read_bytes(), TYPES[file.suffix]
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_origins() -> Iterator[tuple[str, str]]:
    """Two sites on 127.0.0.1: the first is allowed by the stack, the second is not."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tuple(f"http://127.0.0.1:{server.server_address[1]}" for server in servers)  # type: ignore[misc]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def cors_stack(page_origins: tuple[str, str]) -> Iterator[Any]:
    from taskcast.local.testing import running_stack

    allowed, _ = page_origins
    with running_stack(parameters={"CorsAllowedOrigins": allowed}) as running:
        yield running


_CALL = """async ([url, key]) => {
  try {
    const response = await fetch(url + "/tasks", {
      method: "POST",
      headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json", "Idempotency-Key": "k1"},
      body: JSON.stringify({type: "sleep", input: {seconds: 0}}),
    });
    return {status: response.status, location: response.headers.get("Location"), body: await response.json()};
  } catch (error) {
    return {error: String(error)};
  }
}"""


def test_an_allowed_origin_creates_a_task_and_reads_the_answer(
    cors_stack: Any, page_origins: tuple[str, str], page: Any
) -> None:
    allowed, _ = page_origins
    page.goto(allowed)
    answer = page.evaluate(_CALL, [cors_stack.http_url, cors_stack.api_key])
    assert answer.get("status") == 202, answer
    assert answer["location"] == f"/tasks/{answer['body']['id']}"
    refused = page.evaluate(_CALL, [cors_stack.http_url, "not-a-key"])
    assert refused.get("status") in {401, 403}, refused  # API Gateway's own answer, readable by the page
    assert refused["body"]["status"] == refused["status"]


def test_another_origin_is_blocked_by_the_browser(cors_stack: Any, page_origins: tuple[str, str], page: Any) -> None:
    _, other = page_origins
    page.goto(other)
    answer = page.evaluate(_CALL, [cors_stack.http_url, cors_stack.api_key])
    assert "error" in answer and "Failed to fetch" in answer["error"], answer


def test_the_dashboard_on_its_own_site_follows_a_task_over_the_stack(
    cors_stack: Any, page_origins: tuple[str, str], page: Any
) -> None:
    allowed, _ = page_origins
    page.goto(f"{allowed}/dashboard/?api={cors_stack.http_url}&ws={cors_stack.ws_url}")
    page.fill("#api-key", cors_stack.api_key)
    page.locator("#key-form").evaluate("form => form.requestSubmit()")
    expect(page.locator("#transport")).to_have_text("websocket", timeout=30_000)
    page.select_option("#job-type", "sleep")
    page.fill("#job-input", '{"seconds": 1, "steps": 1}')
    page.click("#submit")
    row = page.locator("tr[data-task-id]").first
    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=30_000)
    expect(row).to_have_attribute("data-transport", "websocket")
    assert page.errors == []
