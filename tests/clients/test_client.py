"""TaskcastClient against a scripted taskcast on 127.0.0.1: push, resume, repeats, polling fallback, errors."""

from __future__ import annotations

import threading

import pytest

from taskcast_client import client as client_module
from taskcast_client.client import (
    TaskcastClient,
    TaskcastError,
    TaskcastUnreachable,
    TaskTimeout,
    backoff_delay,
    is_newer,
    merge_update,
    message_from_monitor,
    retry_after_seconds,
    websocket_address,
)
from tests.clients.fake_taskcast import API_KEY, FakeTaskcast


def subscribes(fake: FakeTaskcast) -> list[dict]:
    return [frame for frame in fake.frames_received if frame.get("action") == "subscribe"]


# ---------------------------------------------------------------- pure decisions


def test_only_newer_versions_move_a_task_forward() -> None:
    assert is_newer({"version": 3}, 2)
    assert not is_newer({"version": 2}, 2)
    assert not is_newer({"version": 1}, 2)


def test_merge_update_keeps_links_and_takes_status_progress_error() -> None:
    monitor = {"id": "t1", "status": "RUNNING", "version": 2, "progress": 10, "links": {"self": "/tasks/t1"}}
    error = {"type": "https://taskcast.dev/problems/job-failed", "title": "Job failed"}
    message = {"task_id": "t1", "status": "FAILED", "version": 3, "progress": 10, "at": "T", "error": error}
    merged = merge_update(monitor, message)
    assert merged == {**monitor, "status": "FAILED", "version": 3, "updated_at": "T", "error": error}
    assert monitor["status"] == "RUNNING"  # the input is left alone


def test_a_polled_monitor_reads_like_a_pushed_message() -> None:
    monitor = {"id": "t1", "status": "SUCCEEDED", "version": 4, "progress": 100, "updated_at": "T"}
    assert message_from_monitor(monitor) == {
        "type": "task.status", "task_id": "t1", "status": "SUCCEEDED", "version": 4, "progress": 100, "at": "T",
        "result_url": "/tasks/t1/result",
    }


def test_the_credential_travels_url_encoded_as_ticket_or_token() -> None:
    assert websocket_address("ws://h:1", "a b&c") == "ws://h:1?ticket=a%20b%26c"
    assert websocket_address("ws://h:1", "a b&c", "token") == "ws://h:1?token=a%20b%26c"
    assert websocket_address("wss://h/prod?x=1", "k", "token") == "wss://h/prod?x=1&token=k"


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert backoff_delay(0, base=1, rand=lambda: 0.0) == 0.5
    assert backoff_delay(0, base=1, rand=lambda: 1.0) == 1.0
    assert backoff_delay(3, base=1, rand=lambda: 1.0) == 8.0
    assert backoff_delay(10, base=1, cap=30, rand=lambda: 1.0) == 30.0


def test_retry_after_accepts_seconds_only() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(" 0 ") == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry_after_seconds(None) is None


# ---------------------------------------------------------------- push


def test_wait_follows_every_version_over_the_websocket_without_polling(
    fake: FakeTaskcast, client: TaskcastClient
) -> None:
    handle = client.submit("sleep", {"seconds": 1})
    updates: list[dict] = []

    outcome = handle.wait(timeout=10, on_update=updates.append)

    assert outcome.transport == "websocket"
    assert outcome.status == "SUCCEEDED" and outcome.succeeded
    assert outcome.result == {"echo": {"seconds": 1}, "type": "sleep"}
    assert [(u["version"], u["status"], u["progress"]) for u in updates] == [
        (2, "RUNNING", 0), (3, "RUNNING", 50), (4, "SUCCEEDED", 100),
    ]
    assert outcome.monitor["links"]["self"] == f"/tasks/{handle.id}"  # the monitor keeps what push does not carry
    assert fake.status_polls() == []
    assert subscribes(fake) == [{"action": "subscribe", "task_id": handle.id, "since_version": 1}]


def test_repeated_messages_reach_the_caller_once(fake: FakeTaskcast, client: TaskcastClient) -> None:
    fake.repeat_messages = True
    updates: list[dict] = []

    client.submit("sleep", {}).wait(timeout=10, on_update=updates.append)

    assert [u["version"] for u in updates] == [2, 3, 4]


def test_a_dropped_connection_resumes_with_since_version(fake: FakeTaskcast, client: TaskcastClient) -> None:
    fake.drop_after_messages = 1
    updates: list[dict] = []

    handle = client.submit("sleep", {})
    outcome = handle.wait(timeout=10, on_update=updates.append)

    assert outcome.status == "SUCCEEDED" and outcome.transport == "websocket"
    assert fake.connections == 2
    assert [s.get("since_version") for s in subscribes(fake)] == [1, 2]
    assert [u["version"] for u in updates] == [2, 3, 4]  # no gap, no repeat across the reconnect
    assert fake.status_polls() == []


def test_every_connect_uses_a_fresh_ticket_and_never_puts_the_key_in_a_url(
    fake: FakeTaskcast, client: TaskcastClient
) -> None:
    fake.drop_after_messages = 1  # a reconnect, which needs a ticket of its own

    outcome = client.submit("sleep", {}).wait(timeout=10)

    assert outcome.status == "SUCCEEDED" and outcome.transport == "websocket"
    assert fake.connections == 2
    tickets = [query["ticket"][0] for query in fake.handshake_queries]
    assert len(set(tickets)) == 2 and fake.tickets == set()  # two tickets, each used once
    assert not any("token" in query or API_KEY in str(query) for query in fake.handshake_queries)
    assert len([r for r in fake.requests if r[:2] == ("POST", "/ws-tickets")]) == 2


def test_the_api_key_as_token_is_still_an_option(fake: FakeTaskcast) -> None:
    client = TaskcastClient(fake.http_url, API_KEY, websocket_url=fake.ws_url, websocket_auth="token")

    outcome = client.submit("sleep", {}).wait(timeout=10)

    assert outcome.transport == "websocket"
    assert [query["token"] for query in fake.handshake_queries] == [[API_KEY]]
    assert not [r for r in fake.requests if r[1] == "/ws-tickets"]
    with pytest.raises(ValueError, match="websocket_auth"):
        TaskcastClient(fake.http_url, API_KEY, websocket_auth="header")


def test_a_failed_task_ends_with_its_error_and_no_result(fake: FakeTaskcast, client: TaskcastClient) -> None:
    outcome = client.submit("fail", {}).wait(timeout=10)

    assert outcome.status == "FAILED" and not outcome.succeeded
    assert outcome.error["type"].endswith("/job-failed")
    assert outcome.result is None
    assert not [r for r in fake.requests if r[1].endswith("/result")]


def test_an_idle_wait_pings_to_keep_the_connection(
    fake: FakeTaskcast, client: TaskcastClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "PING_EVERY_S", 0.05)
    handle = client.submit("hang", {})

    def cancel_after_ping() -> None:
        if fake.pinged.wait(timeout=10):
            client.task(handle.id).cancel()

    canceller = threading.Thread(target=cancel_after_ping)
    canceller.start()
    outcome = handle.wait(timeout=15)
    canceller.join(timeout=5)

    assert fake.pinged.is_set()
    assert outcome.status == "CANCELLED"
    assert outcome.error["type"].endswith("/cancelled")


# ---------------------------------------------------------------- polling fallback


def test_without_a_websocket_it_long_polls_to_the_end(fake: FakeTaskcast, closed_port: int) -> None:
    client = TaskcastClient(fake.http_url, API_KEY, websocket_url=f"ws://127.0.0.1:{closed_port}")
    updates: list[dict] = []

    outcome = client.submit("sleep", {"n": 1}).wait(timeout=10, on_update=updates.append)

    assert outcome.transport == "polling"
    assert outcome.status == "SUCCEEDED" and outcome.version == 4
    assert outcome.result == {"echo": {"n": 1}, "type": "sleep"}
    versions = [u["version"] for u in updates]
    assert versions == sorted(set(versions)) and versions[-1] == 4
    polls = fake.status_polls()
    assert polls and all(1 <= int(query["wait"][0]) <= 10 for _, _, query in polls)  # held, within the timeout


def test_a_refused_handshake_falls_back_to_polling(fake: FakeTaskcast, client: TaskcastClient) -> None:
    fake.refuse_websocket = True

    outcome = client.submit("sleep", {}).wait(timeout=10)

    assert outcome.transport == "polling" and outcome.status == "SUCCEEDED"


def test_polling_honours_503_with_retry_after(fake: FakeTaskcast, closed_port: int) -> None:
    fake.unavailable_polls = 2
    client = TaskcastClient(fake.http_url, API_KEY, websocket_url=f"ws://127.0.0.1:{closed_port}")

    outcome = client.submit("sleep", {}).wait(timeout=10)

    assert outcome.status == "SUCCEEDED"
    assert fake.unavailable_polls == 0


def test_a_refused_subscribe_gives_the_rest_answer(fake: FakeTaskcast) -> None:
    client = TaskcastClient(fake.http_url, API_KEY, websocket_url=fake.ws_url)

    with pytest.raises(TaskcastError) as caught:
        client.task("no-such-task").wait(timeout=10)

    assert caught.value.status == 404
    assert caught.value.problem["title"] == "Not Found"


def test_wait_gives_up_at_its_timeout(fake: FakeTaskcast, client: TaskcastClient) -> None:
    handle = client.submit("hang", {})

    with pytest.raises(TaskTimeout) as caught:
        handle.wait(timeout=0.5)

    assert isinstance(caught.value, TimeoutError)
    assert "RUNNING" in caught.value.detail


def test_polling_also_gives_up_at_its_timeout(fake: FakeTaskcast, closed_port: int) -> None:
    client = TaskcastClient(fake.http_url, API_KEY, websocket_url=f"ws://127.0.0.1:{closed_port}")

    with pytest.raises(TaskTimeout):
        client.submit("hang", {}).wait(timeout=1)

    assert all(query["wait"] == ["1"] for _, _, query in fake.status_polls())


# ---------------------------------------------------------------- one-shot calls and errors


def test_status_of_a_finished_task_reads_the_monitor_despite_the_303(
    fake: FakeTaskcast, client: TaskcastClient
) -> None:
    handle = client.submit("sleep", {})
    handle.wait(timeout=10)

    monitor = client.task(handle.id).status()

    assert (monitor["status"], monitor["version"]) == ("SUCCEEDED", 4)
    assert [event["version"] for event in handle.events()] == [1, 2, 3, 4]


def test_a_result_behind_a_presigned_url_is_fetched_without_the_api_key(
    fake: FakeTaskcast, client: TaskcastClient
) -> None:
    fake.result_via_presigned_url = True

    outcome = client.submit("sleep", {"big": True}).wait(timeout=10)

    assert outcome.result == {"echo": {"big": True}, "type": "sleep"}  # the blob server refuses bearer headers


def test_cancel_then_cancel_again_is_a_conflict(fake: FakeTaskcast, client: TaskcastClient) -> None:
    handle = client.submit("hang", {})

    assert handle.cancel()["status"] == "CANCELLED"
    with pytest.raises(TaskcastError) as caught:
        handle.cancel()
    assert caught.value.status == 409

    outcome = handle.wait(timeout=5)  # already terminal: nothing to follow
    assert outcome.status == "CANCELLED" and outcome.result is None


def test_a_bad_api_key_is_a_problem_document(fake: FakeTaskcast) -> None:
    with pytest.raises(TaskcastError) as caught:
        TaskcastClient(fake.http_url, "wrong-key").submit("sleep", {})

    assert caught.value.status == 401
    assert caught.value.title == "Unauthorized"
    assert "wrong-key" not in str(caught.value)


def test_an_unknown_job_type_is_refused_with_400(client: TaskcastClient) -> None:
    with pytest.raises(TaskcastError) as caught:
        client.submit("no-such-job", {})

    assert caught.value.status == 400
    assert caught.value.problem["type"].endswith("/unknown-job-type")


def test_an_unreachable_api_says_so_plainly(closed_port: int) -> None:
    client = TaskcastClient(f"http://127.0.0.1:{closed_port}", API_KEY)

    with pytest.raises(TaskcastUnreachable) as caught:
        client.submit("sleep", {})

    assert "connection refused" in caught.value.detail
    assert API_KEY not in repr(client)


def test_api_paths_stay_under_a_stage_path() -> None:
    client = TaskcastClient("https://abc.execute-api.eu-west-1.amazonaws.com/prod/", "k")

    assert client.url("/tasks/t1/result") == "https://abc.execute-api.eu-west-1.amazonaws.com/prod/tasks/t1/result"
    assert client.same_origin("/tasks/t1")
    assert not client.same_origin("https://bucket.s3.amazonaws.com/t1?X-Amz-Signature=x")
