"""The pure pieces of external jobs: task tokens, heartbeat verdicts, report changes, the registration."""

from __future__ import annotations

import pytest

from taskcast.external_reports import TaskEnded, fail, report_progress, start, succeed, worker_problem
from taskcast.heartbeats import (
    CheckAgain,
    Drop,
    HeartbeatCheck,
    TimedOut,
    delay_seconds,
    is_check,
    parse_check,
    time_out,
    verdict,
)
from taskcast.jobs import JobNameTaken, JobRegistry
from taskcast.models import Status, Task, transition
from taskcast.task_tokens import IssuedToken, issue, matches, parse

TASK_ID = "0b0e9f5e-7d3c-4a4e-9a57-3f1f5d0c2a11"


def test_a_token_names_its_task_and_only_its_secret_matches_the_stored_hash() -> None:
    issued = issue(TASK_ID)
    presented = parse(issued.token)
    assert presented is not None and presented.task_id == TASK_ID
    assert matches(presented, issued.secret_sha256)
    assert presented.secret not in issued.secret_sha256
    other = issue(TASK_ID)
    assert not matches(presented, other.secret_sha256)  # another token of the same task id
    assert not matches(presented, None) and not matches(presented, "")


@pytest.mark.parametrize(
    "token",
    ["", "tt_", f"tt_{TASK_ID}", f"tt_{TASK_ID}.", f"tt_{TASK_ID}.{'a' * 42}", f"tt_{TASK_ID}.{'a' * 44}",
     f"xx_{TASK_ID}.{'a' * 43}", f"tt_{TASK_ID}.{'a' * 42}=", f"tt_../x.{'a' * 43}", f"tt_{'a' * 65}.{'a' * 43}"],
)
def test_malformed_tokens_are_not_tokens(token: str) -> None:
    assert parse(token) is None


def test_tokens_never_show_in_reprs() -> None:
    issued = issue(TASK_ID)
    secret = issued.token.rsplit(".", 1)[1]
    assert secret not in repr(issued) and secret not in repr(parse(issued.token))
    assert repr(IssuedToken("t", "h")) == "IssuedToken(<redacted>)"
    assert "h" * 3 not in repr(Task(id="t", tenant="a", type="x", token_sha256="hhhh"))


def external_task(status: Status = Status.RUNNING, heartbeat_s: int = 60) -> Task:
    task = Task(id=TASK_ID, tenant="acme", type="transcode", heartbeat_s=heartbeat_s, token_sha256="h")
    if status is Status.PENDING:
        return task
    running = transition(task, Status.RUNNING)
    return running if status is Status.RUNNING else transition(running, status)


def test_a_check_times_out_a_task_silent_past_its_deadline_and_no_earlier() -> None:
    check = HeartbeatCheck(TASK_ID, not_before=1060.0)  # handed off at 1000, heartbeat 60 s
    task = external_task()
    assert verdict(task, 1000.0, check, now=1059.9) == CheckAgain(not_before=1060.0)
    assert verdict(task, 1000.0, check, now=1060.0) == TimedOut(silent_s=60.0)
    assert verdict(task, 1050.0, check, now=1061.0) == CheckAgain(not_before=1110.0)  # it beat meanwhile
    assert verdict(task, None, check, now=1061.0) == TimedOut(silent_s=61.0)  # no beat: the check's deadline
    assert verdict(None, 1000.0, check, now=2000.0) == Drop()
    for ended in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED):
        assert verdict(external_task(ended), 1000.0, check, now=2000.0) == Drop()
    assert verdict(Task(id="t", tenant="a", type="sleep"), None, check, now=2000.0) == Drop()  # not external


def test_checks_are_delayed_to_their_deadline_in_hops_of_at_most_15_minutes() -> None:
    assert delay_seconds(1000.4, 1000.0) == 1  # rounded up: a check never arrives early
    assert delay_seconds(999.0, 1000.0) == 0
    assert delay_seconds(1000.0 + 3600, 1000.0) == 900
    long_task = external_task(heartbeat_s=3600)
    hop = verdict(long_task, 1000.0, HeartbeatCheck(TASK_ID, 4600.0), now=1900.0)
    assert hop == CheckAgain(not_before=4600.0)


def test_check_messages_round_trip_and_are_told_from_invocation_records() -> None:
    check = HeartbeatCheck(TASK_ID, 1060.5)
    assert is_check(check.to_json()) and parse_check(check.to_json()) == check
    assert not is_check('{"requestPayload": {"task_id": "x"}}') and not is_check("not json")


def test_a_timeout_fails_an_unfinished_task_and_leaves_an_ended_one() -> None:
    failed = time_out(75.0)(external_task())
    assert failed is not None and failed.status is Status.FAILED
    assert failed.error is not None and failed.error["type"].endswith("/heartbeat-timeout")
    assert time_out(75.0)(external_task(Status.CANCELLED)) is None


def test_reports_start_the_task_once_and_are_refused_once_it_ended() -> None:
    pending = external_task(Status.PENDING)
    running = start(pending)
    assert running is not None and (running.status, running.version) == (Status.RUNNING, 2)
    assert start(running) is None
    moved = report_progress(40.7, "half")(pending)  # progress may be the first report: one version
    assert moved is not None and (moved.status, moved.progress, moved.message) == (Status.RUNNING, 40, "half")
    done = succeed(result={"ok": True})(running)
    assert done is not None and (done.status, done.progress, done.result) == (Status.SUCCEEDED, 100, {"ok": True})
    for ended in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED):
        for change in (start, report_progress(1, None), succeed(result=1), fail({})):
            with pytest.raises(TaskEnded):
                change(external_task(ended))


def test_a_workers_problem_becomes_the_tasks_error() -> None:
    bare = worker_problem({"type": "corrupt-video", "detail": "frame 7", "frame": 7})
    assert bare == {"type": "https://taskcast.dev/problems/corrupt-video", "title": "The job failed", "status": 500,
                    "detail": "frame 7", "frame": 7}
    assert worker_problem({"type": "https://example.com/p/x"})["type"] == "https://example.com/p/x"
    assert worker_problem({})["type"].endswith("/job-failed")


def test_external_jobs_are_declared_once_with_a_bounded_heartbeat() -> None:
    registry = JobRegistry()
    spec = registry.external_job("transcode", heartbeat_s=30, description="Transcodes.")
    assert spec.external is not None and spec.external.heartbeat_s == 30
    assert registry.external_job("transcode", heartbeat_s=30, description="Transcodes.") is spec  # re-import
    with pytest.raises(JobNameTaken):
        registry.external_job("transcode", heartbeat_s=45)
    for bad in (0, 12 * 3600 + 1):
        with pytest.raises(ValueError, match="heartbeat_s"):
            registry.external_job(f"bad-{bad}", heartbeat_s=bad)

    @registry.job("inline")
    def inline(job_input: object, ctx: object) -> None: ...

    with pytest.raises(JobNameTaken):
        registry.external_job("inline")
    with pytest.raises(Exception, match="external worker"):
        spec.function(None, None)  # the Lambda worker fails such a task instead of running it


def test_the_local_request_log_keeps_no_task_token() -> None:
    from taskcast.local.http_gateway import redacted_path

    token = issue(TASK_ID).token
    assert redacted_path(f"/task-tokens/{token}/heartbeat") == "/task-tokens/<token>/heartbeat"
    assert redacted_path(f"/tasks/{TASK_ID}") == f"/tasks/{TASK_ID}"
