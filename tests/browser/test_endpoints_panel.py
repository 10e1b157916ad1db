"""The dashboard's Endpoints panel in headless Chromium against a real local stack: an endpoint added in the
page receives the test event and its tasks' changes, signed with the secret the page showed once (verified by
``standardwebhooks``); its deliveries are listed; disabling it is shown and holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api").expect

FINISH_S = 30_000  # ms: generous bound on a busy machine; waits end as soon as they hold
WAIT_S = 30.0


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    from taskcast.local.testing import running_stack

    with running_stack() as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    # The secret is not known until the page shows it; nothing is delivered before then.
    with WebhookReceiver([]) as running:
        yield running


def open_dashboard(stack: Any, page: Any) -> Any:
    page.goto(f"{stack.http_url}/")
    expect(page.locator("#api-key")).to_have_value(stack.api_key)
    panel = page.locator("#endpoints-panel")
    expect(panel).to_have_attribute("data-loaded", "true", timeout=FINISH_S)
    return panel


def add_endpoint(page: Any, url: str, statuses: list[str]) -> tuple[str, str]:
    """Add an endpoint through the form: its id and the secret the page shows once."""
    before = page.locator("tr.endpoint").count()
    page.fill("#endpoint-url", url)
    for status in statuses:
        page.check(f"input[name='endpoint-status'][value='{status}']")
    page.click("#add-endpoint")
    expect(page.locator("tr.endpoint")).to_have_count(before + 1, timeout=FINISH_S)
    secret = page.locator(".endpoint-secret-value").inner_text()
    assert secret.startswith("whsec_")
    row = page.locator("tr.endpoint", has=page.locator(f"code:text-is('{url}')"))
    return row.get_attribute("data-endpoint-id"), secret


def test_an_endpoint_added_in_the_panel_gets_signed_test_and_task_deliveries(
    stack: Any, page: Any, receiver: WebhookReceiver
) -> None:
    open_dashboard(stack, page)
    url = receiver.url("/panel")
    endpoint_id, secret = add_endpoint(page, url, ["SUCCEEDED"])
    receiver.secrets = [secret]
    row = page.locator(f"tr.endpoint[data-endpoint-id='{endpoint_id}']")
    expect(row.locator(".endpoint-filter")).to_have_text("SUCCEEDED")

    row.locator("button.endpoint-test").click()
    outcome = page.locator(f"tr.endpoint-detail[data-endpoint-id='{endpoint_id}'] .test-outcome")
    expect(outcome).to_have_attribute("data-outcome", "delivered", timeout=FINISH_S)
    (test_event,) = receiver.wait_for_count(1, "/panel", timeout=WAIT_S)
    assert test_event.payload["type"] == "webhook.test"

    # A task submitted in the same page: only its SUCCEEDED change matches the endpoint's filter.
    page.select_option("#job-type", "sleep")
    page.fill("#job-input", '{"seconds": 1, "steps": 1}')
    page.click("#submit")
    task_row = page.locator("tr[data-task-id]").first
    expect(task_row).to_have_attribute("data-status", "SUCCEEDED", timeout=FINISH_S)
    task_id = task_row.get_attribute("data-task-id")
    delivered = receiver.wait_for(
        lambda got: any(r.payload.get("type") == "task.status" for r in got), "/panel", timeout=WAIT_S
    )
    changes = [r for r in delivered if r.payload["type"] == "task.status"]
    assert [r.data["status"] for r in changes] == ["SUCCEEDED"]
    assert changes[0].webhook_id == f"{endpoint_id}.{task_id}.{changes[0].version}"
    receiver.assert_all_verified()

    row.locator("button.endpoint-deliveries").click()
    deliveries = page.locator(f"tr.endpoint-detail[data-endpoint-id='{endpoint_id}'] tr.delivery")
    expect(deliveries.first).to_have_attribute("data-outcome", "delivered", timeout=FINISH_S)
    expect(deliveries.first).to_contain_text(task_id)
    assert page.errors == []


def test_disabling_an_endpoint_in_the_panel_is_shown_and_held_by_the_api(
    stack: Any, page: Any, receiver: WebhookReceiver
) -> None:
    open_dashboard(stack, page)
    endpoint_id, _ = add_endpoint(page, receiver.url("/off"), [])
    row = page.locator(f"tr.endpoint[data-endpoint-id='{endpoint_id}']")
    expect(row).to_have_attribute("data-enabled", "true")

    row.locator("button.endpoint-disable").click()
    expect(row).to_have_attribute("data-enabled", "false", timeout=FINISH_S)
    expect(row.locator(".endpoint-state")).to_contain_text("disabled")
    answer = requests.get(
        f"{stack.http_url}/webhook-endpoints/{endpoint_id}",
        headers={"Authorization": f"Bearer {stack.api_key}"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json()["enabled"] is False

    row.locator("button.endpoint-enable").click()
    expect(row).to_have_attribute("data-enabled", "true", timeout=FINISH_S)

    row.locator("button.endpoint-delete").click()
    expect(row).to_have_count(0, timeout=FINISH_S)
    assert page.errors == []


def test_a_refused_url_is_explained_in_the_panel(stack: Any, page: Any) -> None:
    open_dashboard(stack, page)
    page.fill("#endpoint-url", "https://169.254.169.254/latest/meta-data")
    page.click("#add-endpoint")
    expect(page.locator("#endpoint-error")).to_be_visible(timeout=FINISH_S)
    expect(page.locator("#endpoint-error")).to_contain_text("Could not add the endpoint")
    assert page.errors == []
