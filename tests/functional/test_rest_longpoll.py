"""``GET /tasks/{id}?wait=N``: returns as soon as the version changes, or when the wait runs out."""

from __future__ import annotations

import threading

from tests.functional.rest_harness import WAIT_S, Reply, RestHarness


def test_long_poll_returns_early_when_the_version_changes(api: RestHarness) -> None:
    task_id, gate = api.create_gate("poll", extra_input={"report_again": True})
    assert gate.reported.wait(WAIT_S)
    before = api.request("GET", f"/tasks/{task_id}").json()
    answers: list[Reply] = []
    poller = threading.Thread(
        target=lambda: answers.append(api.request("GET", f"/tasks/{task_id}", query={"wait": "20"}))
    )
    poller.start()
    assert api.hold_started.wait(WAIT_S)
    gate.release.set()  # the job reports 75 %, then succeeds
    poller.join(WAIT_S)
    assert not poller.is_alive()
    changed = answers[0]
    assert changed.json()["version"] > before["version"]
    # 20 s at the 0.05 s poll interval would be 400 sleeps; a change ends the hold after a few.
    assert api.sleeps < 400


def test_long_poll_returns_unchanged_when_the_wait_runs_out(api: RestHarness) -> None:
    task_id, gate = api.create_gate("quiet")
    assert gate.reported.wait(WAIT_S)
    before = api.request("GET", f"/tasks/{task_id}").json()
    reply = api.request("GET", f"/tasks/{task_id}", query={"wait": "0.3"})
    assert reply.status == 200
    assert reply.json()["version"] == before["version"]
    assert reply.json()["status"] == "RUNNING"
    assert reply.header("Retry-After") == "2"
    assert api.sleeps >= 2  # it held and polled


def test_finished_task_answers_a_long_poll_at_once(api: RestHarness) -> None:
    task_id = api.create("sleep", {"seconds": 0}, headers={"Prefer": "wait=5"}).json()["id"]
    sleeps_before = api.sleeps
    reply = api.request("GET", f"/tasks/{task_id}", query={"wait": "20"})
    assert reply.status == 303
    assert api.sleeps == sleeps_before


def test_wait_must_be_a_non_negative_number(api: RestHarness) -> None:
    task_id = api.create("sleep", {"seconds": 0}).json()["id"]
    for value in ("soon", "-1"):
        reply = api.request("GET", f"/tasks/{task_id}", query={"wait": value})
        assert reply.status == 400, value
        assert reply.header("Content-Type") == "application/problem+json"
        assert "wait" in reply.json()["detail"]


def test_long_poll_of_another_tenants_task_is_404_without_holding(api: RestHarness) -> None:
    task_id, gate = api.create_gate("private")
    reply = api.request("GET", f"/tasks/{task_id}", query={"wait": "5"}, tenant="globex")
    assert reply.status == 404
    assert api.sleeps == 0
    gate.release.set()


def test_a_hold_does_not_block_other_requests_of_the_same_process(api: RestHarness) -> None:
    task_id, gate = api.create_gate("held")
    assert gate.reported.wait(WAIT_S)
    poller = threading.Thread(target=lambda: api.request("GET", f"/tasks/{task_id}", query={"wait": "20"}))
    poller.start()
    assert api.hold_started.wait(WAIT_S)
    answers: list[Reply] = []
    other = threading.Thread(target=lambda: answers.append(api.request("GET", f"/tasks/{task_id}/events")))
    other.start()
    other.join(WAIT_S)
    assert answers and answers[0].status == 200
    assert poller.is_alive()  # still holding: only the gate ends it
    gate.release.set()
    poller.join(WAIT_S)
    assert not poller.is_alive()


def test_concurrent_requests_each_get_their_own_answer(api: RestHarness) -> None:
    tasks = {
        tenant: api.create("sleep", {"seconds": 0}, tenant=tenant, headers={"Prefer": "wait=5"}).json()["id"]
        for tenant in ("acme", "globex")
    }
    mismatches: list[str] = []

    def client(tenant: str) -> None:
        for _ in range(5):
            reply = api.request("GET", f"/tasks/{tasks[tenant]}", tenant=tenant)
            if reply.status != 303 or reply.json()["id"] != tasks[tenant]:
                mismatches.append(f"{tenant}: {reply.status} {reply.text[:80]}")

    threads = [threading.Thread(target=client, args=(tenant,)) for tenant in ("acme", "globex") * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert mismatches == []
