"""Schemathesis against ``/openapi.json`` on a real local stack: over 1,000 generated requests across every
operation, with a tenant's key; no 5xx, and every answer conforms to the description (status, content type,
schema). The gateway's request log counts the requests independently of the tool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from taskcast.local.testing import RunningStack
from tests.conftest import TENANTS

MAX_EXAMPLES = int(os.environ.get("TASKCAST_FUZZ_EXAMPLES", "120"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.mark.timeout(480)
def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_description(stack: RunningStack,
                                                                                  tmp_path: Path) -> None:
    stack.clear_request_log()
    # One worker: CPython 3.11's ast.parse is not thread-safe (gh-106905), and Hypothesis parses lambda sources
    # while describing strategies, so two worker threads can fail with a spurious SystemError.
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{stack.http_url}/openapi.json",
        "--header", f"Authorization: Bearer {TENANTS['acme']['api_key']}",
        "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", "20261122", "--no-shrink",
        "--generation-database", "none", "--workers", "1", "--request-timeout", "60",
        "--phases", "examples,fuzzing,stateful",
    ]
    # About 250 s on a quiet 2-core machine: the endpoints the run registers (up to 20) each get every change
    # of the tasks it creates, so the stack delivers and logs in the background while the run goes on.
    run = subprocess.run(command, capture_output=True, text=True, timeout=450, cwd=tmp_path,  # noqa: S603
                         env={**os.environ, "NO_COLOR": "1"})
    summary = run.stdout[-6000:]

    log = stack.request_log
    operations = {(entry["method"], entry.get("resource")) for entry in log}
    server_errors = [entry for entry in log if entry["status"] >= 500]
    assert run.returncode == 0, summary + run.stderr[-2000:]
    assert len(log) >= 1000, summary
    assert server_errors == [], server_errors[:5]
    assert {("POST", "/tasks"), ("GET", "/tasks/{id}"), ("GET", "/tasks/{id}/result"), ("GET", "/tasks/{id}/events"),
            ("GET", "/tasks/{id}/deliveries"), ("DELETE", "/tasks/{id}")} <= operations, sorted(map(str, operations))


def test_a_body_that_is_not_utf8_is_a_400_problem(stack: RunningStack) -> None:
    answer = requests.post(f"{stack.http_url}/tasks", data=b"\xff\xfe{\x00", timeout=30, headers={
        "Authorization": f"Bearer {TENANTS['acme']['api_key']}", "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["status"] == 400


def test_the_description_names_the_gateways_401_and_403_on_every_operation_behind_the_authorizer(
    stack: RunningStack,
) -> None:
    document = requests.get(f"{stack.http_url}/openapi.json", timeout=30).json()
    public = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/task-tokens/"):
                # The worker's token is the credential (no authorizer): no 401/403, and no API key asked for.
                public += 1
                assert operation.get("security") == [], (method, path)
                assert not {"401", "403"} & set(operation["responses"]), (method, path)
            else:
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
    assert public >= 4
