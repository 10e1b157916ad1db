"""The polling path end to end: create → worker → RUNNING with progress → 303 → result → history."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest

from tests.functional.rest_harness import WAIT_S, RestHarness


def test_create_run_progress_result_and_history(api: RestHarness) -> None:
    created = api.create("gate", {"name": "main"})
    assert created.status == 202
    task_id = created.json()["id"]
    assert created.header("Location") == f"/tasks/{task_id}"
    assert created.header("Retry-After") == "2"
    assert parsedate_to_datetime(created.header("Expires")).timestamp() > 0
    monitor = created.json()
    assert monitor["status"] == "PENDING" and monitor["version"] == 1 and monitor["progress"] == 0
    assert monitor["links"] == {
        "self": f"/tasks/{task_id}",
        "result": f"/tasks/{task_id}/result",
        "events": f"/tasks/{task_id}/events",
        "websocket": "ws://127.0.0.1:3001",
    }

    gate = api.gate("main")
    assert gate.reported.wait(WAIT_S)
    running = api.request("GET", f"/tasks/{task_id}")
    assert running.status == 200
    assert running.header("Retry-After") == "2"
    assert running.json()["status"] == "RUNNING"
    assert running.json()["progress"] == 50
    assert running.json()["message"] == "half way"

    not_yet = api.request("GET", f"/tasks/{task_id}/result")
    assert not_yet.status == 409
    assert not_yet.header("Content-Type") == "application/problem+json"
    assert not_yet.json()["type"].endswith("/task-not-finished")

    gate.release.set()
    api.join_workers()
    done = api.request("GET", f"/tasks/{task_id}")
    assert done.status == 303
    assert done.header("Location") == f"/tasks/{task_id}/result"
    assert done.header("Retry-After") is None
    assert done.json()["status"] == "SUCCEEDED" and done.json()["progress"] == 100

    result = api.request("GET", f"/tasks/{task_id}/result")
    assert result.status == 200
    assert result.header("Content-Type") == "application/json"
    assert result.json() == {"gate": "main", "ok": True}

    events = api.request("GET", f"/tasks/{task_id}/events").json()
    assert [(entry["version"], entry["status"], entry["progress"]) for entry in events] == [
        (1, "PENDING", 0),
        (2, "RUNNING", 0),
        (3, "RUNNING", 50),
        (4, "SUCCEEDED", 100),
    ]
    assert [entry["at"] for entry in events] == sorted(entry["at"] for entry in events)


def test_builtin_sleep_with_prefer_wait_answers_as_get_would(api: RestHarness) -> None:
    reply = api.create("sleep", {"seconds": 0.2, "steps": 2}, headers={"Prefer": "respond-async, wait=5"})
    assert reply.status == 303
    assert reply.header("Preference-Applied") == "wait=5"
    task_id = reply.json()["id"]
    assert reply.header("Location") == f"/tasks/{task_id}/result"
    assert api.request("GET", f"/tasks/{task_id}/result").json() == {"slept_s": 0.2, "steps": 2}
    statuses = [(entry["status"], entry["progress"]) for entry in api.request("GET", f"/tasks/{task_id}/events").json()]
    assert statuses == [("PENDING", 0), ("RUNNING", 0), ("RUNNING", 50), ("SUCCEEDED", 100)]


def test_prefer_wait_that_runs_out_answers_202_without_preference_applied(api: RestHarness) -> None:
    gate = api.gate("slow")
    reply = api.create("gate", {"name": "slow"}, headers={"Prefer": "wait=0.3"})
    assert reply.status == 202
    assert reply.header("Preference-Applied") is None
    assert reply.header("Location") == f"/tasks/{reply.json()['id']}"
    assert api.sleeps >= 1  # it did hold
    gate.release.set()


@pytest.mark.parametrize("value", ["plain text", None, 7, [1, "two"]])
def test_result_is_the_jobs_json_value_as_returned(api: RestHarness, value) -> None:
    api.registry.job("constant")(lambda job_input, ctx: value)
    task_id = api.create("constant", headers={"Prefer": "wait=5"}).json()["id"]
    reply = api.request("GET", f"/tasks/{task_id}/result")
    assert reply.status == 200
    assert reply.json() == value


def test_a_large_job_is_started_on_the_large_worker_and_the_task_remembers_it(api: RestHarness) -> None:
    api.registry.job("render-video", memory="large")(lambda job_input, ctx: "rendered")
    large = api.create("render-video", headers={"Prefer": "wait=5"}).json()
    small = api.create("sleep", {"seconds": 0}, headers={"Prefer": "wait=5"}).json()

    assert api.worker_classes == {large["id"]: "large", small["id"]: "standard"}
    assert api.store.get(large["id"]).worker_class == "large"
    assert api.store.get(small["id"]).worker_class == "standard"
    assert api.request("GET", f"/tasks/{large['id']}/result").json() == "rendered"


def test_a_job_asking_for_an_unknown_memory_class_is_refused_at_registration(api: RestHarness) -> None:
    from taskcast.jobs.registry import UnknownWorkerClass

    with pytest.raises(UnknownWorkerClass, match="memory must be one of standard, large"):
        api.registry.job("huge", memory="huge")  # type: ignore[arg-type]


def test_failing_job_ends_failed_with_problem_error(api: RestHarness) -> None:
    reply = api.create("fail", {"message": "the disk is full"}, headers={"Prefer": "wait=5"})
    assert reply.status == 200
    assert reply.header("Preference-Applied") == "wait=5"
    body = reply.json()
    assert body["status"] == "FAILED"
    assert body["error"]["type"].endswith("/job-failed")
    assert body["error"]["detail"] == "the disk is full"
    assert {"type", "title", "status", "detail"} <= set(body["error"])

    result = api.request("GET", f"/tasks/{body['id']}/result")
    assert result.status == 409
    assert result.json()["error"] == body["error"]
    assert result.json()["task_status"] == "FAILED"


def test_crashing_job_names_the_exception(api: RestHarness) -> None:
    reply = api.create("crash", headers={"Prefer": "wait=5"})
    assert reply.json()["status"] == "FAILED"
    assert reply.json()["error"]["detail"] == "ValueError: division by zero, on purpose"


def test_deliveries_lists_the_log_after_the_tenant_check(api: RestHarness) -> None:
    from taskcast.store import DeliveryAttempt, DeliveryLog

    task_id = api.create("sleep", {"seconds": 0}).json()["id"]
    assert api.request("GET", f"/tasks/{task_id}/deliveries").json() == []
    attempt = DeliveryAttempt(
        webhook_id=f"{task_id}.1",
        version=1,
        attempt=1,
        status_code=503,
        at="2025-01-01T00:00:00.000Z",
        outcome="retrying",
        error="HTTP 503",
    )
    DeliveryLog(api.settings.tasks_table, api.dynamodb).record(task_id, "acme", 0, attempt)
    listed = api.request("GET", f"/tasks/{task_id}/deliveries")
    assert listed.status == 200
    assert listed.json() == [attempt.as_json()]
    assert api.request("GET", f"/tasks/{task_id}/deliveries", tenant="globex").status == 404


def test_dispatch_failure_marks_the_task_failed_and_answers_503(dynamodb, settings) -> None:
    with RestHarness(settings) as harness:

        def broken_invoker(task_id: str, worker_class: str) -> None:
            raise ConnectionError("lambda endpoint unreachable")

        harness.deps.invoke_worker = broken_invoker
        reply = harness.create("sleep", {"seconds": 1})
        assert reply.status == 503
        assert reply.header("Content-Type") == "application/problem+json"
        problem = reply.json()
        assert problem["type"].endswith("/worker-unavailable")
        task = harness.request("GET", f"/tasks/{problem['task_id']}").json()
        assert task["status"] == "FAILED"
        assert task["error"]["type"].endswith("/dispatch-failed")
