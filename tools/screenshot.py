"""Regenerate the README's screenshot: ``python -m tools.screenshot [docs/dashboard.png]``.

Starts a local stack on free ports, opens the dashboard in headless Chromium, runs a few tasks (one
finished, one failed, one still running) and saves the page. Needs the dev extras (Playwright) and Chromium.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

CHROMIUM = os.environ.get("TASKCAST_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 60_000


def capture(output: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from taskcast.local.testing import running_stack

    with running_stack() as stack, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 860}, device_scale_factor=1)
        page.goto(f"{stack.http_url}/")
        expect(page.locator("#transport")).to_have_text("websocket", timeout=WAIT_MS)

        def submit(job_type: str, job_input: str) -> None:
            page.select_option("#job-type", job_type)
            page.fill("#job-input", job_input)
            page.click("#submit")

        submit("fail", '{"message": "the upstream service answered 503"}')
        submit("sleep", '{"seconds": 3, "steps": 3}')
        rows = page.locator("tr[data-task-id]")
        expect(rows.first).to_have_attribute("data-status", "SUCCEEDED", timeout=WAIT_MS)
        expect(rows.nth(1)).to_have_attribute("data-status", "FAILED", timeout=WAIT_MS)
        submit("sleep", '{"seconds": 40, "steps": 10}')
        expect(rows.first).to_have_attribute("data-version", "4", timeout=WAIT_MS)  # running, with progress
        page.select_option("#job-type", "sleep")
        page.fill("#job-input", '{"seconds": 5, "steps": 5}')
        page.evaluate("document.activeElement.blur()")
        output.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(output), full_page=True)
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="docs/dashboard.png", type=Path)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        sys.stderr.write(f"Chromium not found at {CHROMIUM}; set TASKCAST_CHROMIUM\n")
        return 1
    capture(args.output)
    sys.stderr.write(f"saved {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
