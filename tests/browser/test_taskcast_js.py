"""taskcast.js, the browser client, in headless Chromium against a real local stack: every version in order
over a forced drop and over the gateway's maximum connection duration, one socket for many tasks, the
long-poll fallback and the way back to push, and a refused ticket reported as an authentication error."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

pytest.importorskip("playwright.sync_api")

DOC = Path(__file__).resolve().parents[2] / "docs" / "browser-client.md"
WAIT_MS = 30_000  # bound of every wait; each ends as soon as what it waits for holds

# The page under test: the module as served by the stack; every WebSocket the page opens is counted.
HARNESS = """<!doctype html><meta charset="utf-8"><title>taskcast.js</title>
<script type="module">
  import { Taskcast } from "/taskcast.js";
  const Native = window.WebSocket;
  window.sockets = [];
  window.pings = 0;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.sockets.push(args[0]); }
    send(data) { if (JSON.parse(data).action === "ping") window.pings += 1; super.send(data); }
  };
  window.Taskcast = Taskcast;
  window.harnessReady = true;
</script>"""

# Creates a client, records its states, errors and every update; submits and follows tasks.
START = """async ({restUrl, websocketUrl, auth, options}) => {
  window.states = []; window.errors = []; window.updates = []; window.finished = {};
  window.tc = new Taskcast({restUrl, websocketUrl, auth, ...options});
  tc.on("state", (state) => states.push(state));
  tc.on("error", (error) => errors.push({code: error.code, message: error.message}));
}"""

FOLLOW = """async ([type, input]) => {
  const task = await tc.submit(type, input);
  const handle = tc.follow(task.id, {
    onUpdate: (u) => updates.push([u.task_id, u.version, u.status, u.via]),
    onError: (error) => errors.push({code: error.code, message: error.message, task: task.id}),
  });
  handle.done.then((u) => { finished[task.id] = u.status; }, (e) => { finished[task.id] = "error: " + e.message; });
  return task.id;
}"""


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    from taskcast.local.testing import running_stack

    with running_stack() as running:
        yield running


@pytest.fixture(scope="module")
def short_stack() -> Iterator[Any]:
    """Connections last at most 4 s (API Gateway: 2 hours), to see the client outlive its connections."""
    from taskcast.local.testing import running_stack

    with running_stack(ws_max_duration_s=4) as running:
        yield running


@pytest.fixture(scope="module")
def idle_stack() -> Iterator[Any]:
    """Connections idle for 2 s are closed (API Gateway: 10 minutes)."""
    from taskcast.local.testing import running_stack

    with running_stack(ws_idle_timeout_s=2) as running:
        yield running


def open_harness(page: Any, stack: Any, auth: dict[str, Any] | None = None, **options: Any) -> None:
    # A document the stack itself served (Chromium lets only such a loopback page reach the loopback
    # WebSocket), its content then replaced by the harness; the origin stays the stack's.
    page.goto(f"{stack.http_url}/dashboard/style.css")
    page.set_content(HARNESS)
    page.wait_for_function("window.harnessReady === true", timeout=WAIT_MS)
    page.evaluate(START, {"restUrl": stack.http_url, "websocketUrl": stack.ws_url,
                          "auth": auth or {"apiKey": stack.api_key}, "options": options})


def follow(page: Any, job_type: str, job_input: dict[str, Any]) -> str:
    return page.evaluate(FOLLOW, [job_type, job_input])


def wait_finished(page: Any, task_id: str, timeout: int = WAIT_MS) -> str:
    page.wait_for_function("(id) => window.finished[id] !== undefined", arg=task_id, timeout=timeout)
    return page.evaluate("(id) => window.finished[id]", task_id)


def updates_of(page: Any, task_id: str) -> list[tuple[int, str, str]]:
    return [(version, status, via) for tid, version, status, via in page.evaluate("window.updates") if tid == task_id]


def assert_every_version_once_in_order(seen: list[tuple[int, str, str]]) -> None:
    versions = [version for version, _, _ in seen]
    assert versions == list(range(1, len(versions) + 1)), seen  # 1..N: none missed, none repeated, none back
    assert seen[0][1] == "PENDING" and seen[-1][1] == "SUCCEEDED", seen


def management(stack: Any, method: str, path: str) -> Any:
    request = urllib.request.Request(f"{stack.management_url}{path}", method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the stack's loopback URL
        body = answer.read()
    return json.loads(body) if body else None


def live_connections(stack: Any) -> list[str]:
    return management(stack, "GET", "/@connections")["connections"]


def wait_for_connections(stack: Any, count: int, timeout_s: float = 10) -> list[str]:
    """The stack's live connections once there are `count` of them (closed pages take a moment to be gone)."""
    deadline = time.monotonic() + timeout_s
    while True:
        connections = live_connections(stack)
        if len(connections) == count or time.monotonic() >= deadline:
            return connections
        time.sleep(0.1)


def test_every_version_arrives_once_in_order_over_a_forced_drop(stack: Any, page: Any) -> None:
    open_harness(page, stack)
    task_id = follow(page, "sleep", {"seconds": 6, "steps": 6})
    page.wait_for_function("window.updates.length >= 3", timeout=WAIT_MS)

    [connection] = wait_for_connections(stack, 1)
    management(stack, "DELETE", f"/@connections/{connection}")  # the server drops the socket mid-task

    assert wait_finished(page, task_id) == "SUCCEEDED"
    seen = updates_of(page, task_id)
    assert_every_version_once_in_order(seen)
    assert page.evaluate("window.sockets.length") == 2  # reopened once, and the task resumed on it
    states = page.evaluate("window.states")
    assert states[:2] == ["connecting", "open"] and states.count("open") == 2, states
    assert {via for _, _, via in seen} == {"websocket"}
    assert page.errors == []


def test_a_connection_closed_at_its_maximum_duration_resumes_without_loss(short_stack: Any, page: Any) -> None:
    open_harness(page, short_stack)
    task_id = follow(page, "sleep", {"seconds": 10, "steps": 10})

    assert wait_finished(page, task_id) == "SUCCEEDED"
    assert_every_version_once_in_order(updates_of(page, task_id))
    assert page.evaluate("window.sockets.length") >= 2  # the gateway closed at least one connection
    assert page.evaluate("window.errors") == []
    assert page.errors == []


def test_two_followed_tasks_share_one_socket(stack: Any, page: Any) -> None:
    wait_for_connections(stack, 0)
    open_harness(page, stack)
    first = follow(page, "sleep", {"seconds": 4, "steps": 4})
    second = follow(page, "sleep", {"seconds": 4, "steps": 4})
    page.wait_for_function("(ids) => ids.every((id) => window.updates.some(([t, v]) => t === id && v >= 3))",
                           arg=[first, second], timeout=WAIT_MS)

    assert len(wait_for_connections(stack, 1)) == 1  # the stack sees one connection for both
    assert page.evaluate("window.sockets.length") == 1

    assert wait_finished(page, first) == "SUCCEEDED" and wait_finished(page, second) == "SUCCEEDED"
    assert_every_version_once_in_order(updates_of(page, first))
    assert_every_version_once_in_order(updates_of(page, second))
    # Nothing followed any more: the socket is closed (after the client's short linger).
    page.wait_for_function("window.tc.state === 'closed'", timeout=WAIT_MS)
    assert page.errors == []


def test_a_refused_ticket_is_reported_as_an_authentication_error(stack: Any, page: Any) -> None:
    # The app's backend would mint tickets; this one hands out a forged one. REST still works (its headers).
    auth = {"headers": {"Authorization": f"Bearer {stack.api_key}"}}
    open_harness(page, stack, auth)
    page.evaluate("() => { tc.auth.getTicket = async () => 'wst_forged'; }")
    task_id = follow(page, "sleep", {"seconds": 2, "steps": 2})

    page.wait_for_function("window.errors.some((e) => e.code === 'auth')", timeout=WAIT_MS)
    error = next(e for e in page.evaluate("window.errors") if e["code"] == "auth")
    assert "Authentication failed" in error["message"] and "ticket" in error["message"], error
    # Reported, not retried in a loop; the task is still followed to its end, by REST.
    assert wait_finished(page, task_id) == "SUCCEEDED"
    assert page.evaluate("window.sockets.length") == 1
    assert {via for _, _, via in updates_of(page, task_id)} == {"polling"}
    assert page.errors == []


def test_a_refused_api_key_is_reported_as_an_authentication_error(stack: Any, page: Any) -> None:
    open_harness(page, stack, {"apiKey": "not-a-key"})
    page.evaluate("() => tc.connect()")

    page.wait_for_function("window.errors.some((e) => e.code === 'auth')", timeout=WAIT_MS)
    error = next(e for e in page.evaluate("window.errors") if e["code"] == "auth")
    assert error["message"].startswith("Authentication failed (40"), error
    assert page.evaluate("window.sockets.length") == 0  # the ticket was refused: no handshake tried
    assert page.errors == []


@pytest.fixture
def websocket_port_closed(stack: Any) -> Iterator[None]:
    stack.stop_websocket()
    try:
        yield
    finally:
        stack.start_websocket()


def test_without_the_socket_it_long_polls_then_returns_to_push(
    stack: Any, page: Any, websocket_port_closed: None
) -> None:
    open_harness(page, stack, reconnectBaseMs=300, reconnectCapMs=1500)
    task_id = follow(page, "sleep", {"seconds": 12, "steps": 12})
    page.wait_for_function("window.tc.state === 'polling'", timeout=WAIT_MS)
    page.wait_for_function("(id) => window.updates.filter(([t, , , via]) => t === id && via === 'polling').length >= 2",
                           arg=task_id, timeout=WAIT_MS)
    polls = [e for e in stack.request_log if e["path"] == f"/tasks/{task_id}" and e["method"] == "GET"]
    assert polls and all("wait=" in (e.get("query") or "") for e in polls), polls  # long-polls, not plain polls

    stack.start_websocket()
    page.wait_for_function("window.tc.state === 'open'", timeout=WAIT_MS)
    assert wait_finished(page, task_id) == "SUCCEEDED"

    seen = updates_of(page, task_id)
    assert_every_version_once_in_order(seen)
    vias = [via for _, _, via in seen]
    assert "polling" in vias and vias[-1] == "websocket", seen  # push took over again
    assert page.errors == []


def documented_example() -> str:
    """The first html block of the doc's Example section, as it is written there."""
    section = DOC.read_text().split("\n## Example\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```html\n(.*?)```", section, re.DOTALL)
    assert match, "docs/browser-client.md has no html example"
    return match.group(1)


def test_the_documented_example_works_as_written(stack: Any, page: Any) -> None:
    example = documented_example()
    assert len(example.splitlines()) <= 35 and "YOUR_DEV_KEY" in example
    # Only what a reader fills in: the stack's URL (here on a free port) and the dev key it printed.
    html = example.replace("http://127.0.0.1:3000", stack.http_url).replace("YOUR_DEV_KEY", stack.api_key)
    page.goto(f"{stack.http_url}/dashboard/style.css")
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    page.set_content(html)

    status = page.locator("#status")
    page.wait_for_function("document.querySelector('#status').textContent === 'SUCCEEDED'", timeout=WAIT_MS)
    assert status.text_content() == "SUCCEEDED"
    assert page.locator("#bar").evaluate("bar => bar.value") == 100
    page.wait_for_function("document.querySelector('#result').textContent.includes('slept_s')", timeout=WAIT_MS)
    assert len(opened) == 1 and opened[0].startswith(f"{stack.ws_url}/?ticket=wst_"), opened  # pushed, by ticket
    assert page.errors == []


def test_pings_keep_a_quiet_socket_open_past_the_idle_timeout(idle_stack: Any, page: Any) -> None:
    open_harness(page, idle_stack, pingIntervalMs=500)
    page.evaluate("() => tc.connect()")
    page.wait_for_function("window.tc.state === 'open'", timeout=WAIT_MS)
    page.wait_for_function("window.pings >= 8", timeout=WAIT_MS)  # 4 s: twice the idle timeout

    assert page.evaluate("window.sockets.length") == 1 and page.evaluate("window.tc.state") == "open"
    assert page.errors == []


def test_without_pings_the_idle_timeout_closes_the_socket_and_it_is_reopened(idle_stack: Any, page: Any) -> None:
    open_harness(page, idle_stack)  # the default interval, 4 minutes, is far beyond this stack's 2 s
    page.evaluate("() => tc.connect()")
    page.wait_for_function("window.sockets.length >= 2 && window.tc.state === 'open'", timeout=WAIT_MS)
    assert page.evaluate("window.pings") == 0 and page.evaluate("window.errors") == []


def test_the_long_poll_waits_as_long_as_a_429_asks(stack: Any, page: Any, websocket_port_closed: None) -> None:
    long_polls: list[float] = []
    refused: list[float] = []

    def throttle_first(route: Any) -> None:
        long_polls.append(time.monotonic())
        if not refused:
            refused.append(time.monotonic())
            problem = {"type": "about:blank", "title": "Too Many Requests", "status": 429}
            route.fulfill(status=429, headers={"Retry-After": "2"}, content_type="application/problem+json",
                          body=json.dumps(problem))
        else:
            route.continue_()

    open_harness(page, stack)
    page.route(re.compile(r"/tasks/[^/?]+\?wait="), throttle_first)
    task_id = follow(page, "sleep", {"seconds": 2, "steps": 2})

    assert wait_finished(page, task_id) == "SUCCEEDED"
    assert_every_version_once_in_order(updates_of(page, task_id))
    assert len(long_polls) >= 2 and long_polls[1] - refused[0] >= 1.9, long_polls  # Retry-After: 2 honoured
    assert page.errors == []
