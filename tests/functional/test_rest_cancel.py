"""``DELETE /tasks/{id}``: cooperative cancel, and races between cancel and completion (one winner)."""

from __future__ import annotations

import threading

from taskcast.store import TaskStore
from tests.functional.rest_harness import WAIT_S, Reply, RestHarness


def test_cancel_running_task_stops_the_job_at_its_next_report(api: RestHarness) -> None:
    task_id, gate = api.create_gate("cancel-me", extra_input={"report_again": True})
    assert gate.reported.wait(WAIT_S)
    reply = api.request("DELETE", f"/tasks/{task_id}")
    assert reply.status == 202
    assert reply.json()["status"] == "CANCELLED"
    assert reply.json()["error"]["type"].endswith("/cancelled")
    gate.release.set()
    api.join_workers()
    assert gate.stopped.is_set()
    final = api.request("GET", f"/tasks/{task_id}").json()
    assert final["status"] == "CANCELLED"
    history = api.request("GET", f"/tasks/{task_id}/events").json()
    assert [entry["status"] for entry in history] == ["PENDING", "RUNNING", "RUNNING", "CANCELLED"]
    result = api.request("GET", f"/tasks/{task_id}/result")
    assert result.status == 409
    assert result.json()["error"]["type"].endswith("/cancelled")


def test_cancel_pending_task_and_the_late_worker_does_nothing(dynamodb, settings) -> None:
    with RestHarness(settings, start_workers=False) as api:
        task_id = api.create("gate", {"name": "never"}).json()["id"]
        assert api.request("DELETE", f"/tasks/{task_id}").status == 202
        api.run_worker_async(task_id)
        api.join_workers()
        assert api.gate("never").calls == 0
        assert api.request("GET", f"/tasks/{task_id}").json()["status"] == "CANCELLED"


def test_cancel_of_a_finished_task_is_409(api: RestHarness) -> None:
    task_id = api.create("sleep", {"seconds": 0}, headers={"Prefer": "wait=5"}).json()["id"]
    reply = api.request("DELETE", f"/tasks/{task_id}")
    assert reply.status == 409
    assert reply.json()["type"].endswith("/task-finished")
    assert reply.json()["task_status"] == "SUCCEEDED"


class PausingStore(TaskStore):
    """A store whose first conditional write waits: the cancel has read RUNNING but not written yet."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read_done = threading.Event()
        self.proceed = threading.Event()
        self.paused = False

    def replace(self, current, new):
        if not self.paused:
            self.paused = True
            self.read_done.set()
            assert self.proceed.wait(WAIT_S)
        return super().replace(current, new)


def test_cancel_loses_to_completion_written_first(api: RestHarness) -> None:
    task_id, gate = api.create_gate("race")
    assert gate.reported.wait(WAIT_S)
    pausing = PausingStore(api.settings.tasks_table, api.dynamodb)
    api.deps.store = pausing
    answers: list[Reply] = []
    canceller = threading.Thread(target=lambda: answers.append(api.request("DELETE", f"/tasks/{task_id}")))
    canceller.start()
    assert pausing.read_done.wait(WAIT_S)  # the cancel decided on a RUNNING task...
    gate.release.set()
    api.join_workers()  # ...but the worker's SUCCEEDED is written first
    pausing.proceed.set()
    canceller.join(WAIT_S)
    assert answers[0].status == 409
    assert answers[0].json()["task_status"] == "SUCCEEDED"
    history = api.request("GET", f"/tasks/{task_id}/events").json()
    terminal = [entry["status"] for entry in history if entry["status"] in {"SUCCEEDED", "FAILED", "CANCELLED"}]
    assert terminal == ["SUCCEEDED"]
    assert [entry["version"] for entry in history] == list(range(1, len(history) + 1))


def test_completion_loses_to_cancel_written_first(api: RestHarness) -> None:
    task_id, gate = api.create_gate("race-2")
    assert gate.reported.wait(WAIT_S)
    assert api.request("DELETE", f"/tasks/{task_id}").status == 202
    gate.release.set()  # the job returns a result without reporting again: the result is dropped
    api.join_workers()
    assert api.request("GET", f"/tasks/{task_id}").json()["status"] == "CANCELLED"
    history = api.request("GET", f"/tasks/{task_id}/events").json()
    assert [entry["status"] for entry in history][-1] == "CANCELLED"
    assert sum(entry["status"] in {"SUCCEEDED", "CANCELLED"} for entry in history) == 1
