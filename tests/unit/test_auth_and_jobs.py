"""Pure decisions of the authorizers, the job registry, the worker and its failure records."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import BaseModel

from taskcast.auth import api_wildcard, bearer_token, header, policy
from taskcast.jobs import InvalidJobInput, JobContext, JobFailed, JobRegistry, UnknownJob, default_registry
from taskcast.jobs.builtin import sleep_plan
from taskcast.models import Status, Task
from taskcast.worker_failures import (
    NotAnInvocationRecord,
    fail_unfinished,
    failure_error,
    parse_invocation_record,
)
from taskcast.worker_runtime import claim, error_for_exception, finish


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer", None),
        ("Bearer a b", None),
        ("Basic abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(value, expected) -> None:
    assert bearer_token(value) == expected


def test_header_lookup_ignores_case_and_non_strings() -> None:
    assert header({"authorization": "x"}, "Authorization") == "x"
    assert header({"Authorization": None}, "authorization") is None
    assert header(None, "a") is None


def test_api_wildcard_covers_every_method_and_path_of_the_stage() -> None:
    arn = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/tasks/1/result"
    assert api_wildcard(arn) == "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*/*"
    assert api_wildcard("garbage") == "garbage"


def test_policy_shape() -> None:
    answer = policy("acme", "Allow", "arn:x", {"tenant": "acme"})
    assert answer["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:x"}
    ]
    assert "context" not in policy("anonymous", "Deny", "arn:x")


@pytest.mark.parametrize(
    ("seconds", "steps", "expected"),
    [
        (2, 4, [(0.5, 25), (0.5, 50), (0.5, 75), (0.5, 100)]),
        (3, 1, [(3, 100)]),
        (0.5, None, [(0.5, 100)]),  # default K = min(N, 10), at least 1
        (40, None, [(4.0, p) for p in range(10, 101, 10)]),
        (0, 3, [(0, 33), (0, 67), (0, 100)]),
    ],
)
def test_sleep_plan(seconds, steps, expected) -> None:
    assert sleep_plan(seconds, steps) == expected


def test_registry_validates_input_and_names_known_jobs() -> None:
    registry = JobRegistry()

    class Shape(BaseModel):
        size: int

    @registry.job("shape", input_model=Shape)
    def shape(job_input: Shape, ctx) -> int:
        return job_input.size

    assert registry.validate("shape", {"size": 3}) == Shape(size=3)
    with pytest.raises(InvalidJobInput, match=r"input\.size"):
        registry.validate("shape", {"size": "big"})
    with pytest.raises(UnknownJob, match="known types: shape"):
        registry.validate("other", None)
    assert "shape" not in default_registry.names()
    assert {"sleep", "fail", "invoke"} <= set(default_registry.names())
    copy = registry.copy()
    copy.job("extra")(lambda job_input, ctx: None)
    assert registry.names() == ["shape"]


def test_job_context_remaining_time() -> None:
    task = Task(id="t", tenant="acme", type="sleep")

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 4500

    assert JobContext(task, store=None, lambda_context=Context()).remaining_s() == 4.5
    assert JobContext(task, store=None).remaining_s() == math.inf


def test_error_for_exception() -> None:
    error = error_for_exception(JobFailed("nope", kind="quota", limit=3))
    assert error["type"].endswith("/quota") and error["detail"] == "nope" and error["limit"] == 3
    assert error_for_exception(KeyError("k"))["detail"] == "KeyError: 'k'"


def test_claim_and_finish_respect_who_got_there_first() -> None:
    pending = Task(id="t", tenant="acme", type="sleep")
    running = claim(pending)
    assert running.status is Status.RUNNING and running.version == 2
    assert claim(running) is None
    done = finish(Status.SUCCEEDED, result=1)(running)
    assert done.status is Status.SUCCEEDED and done.result == 1
    assert finish(Status.FAILED)(done) is None


def record(**overrides) -> str:
    body = {
        "requestContext": {"condition": "RetriesExhausted"},
        "requestPayload": {"task_id": "t"},
        "responsePayload": {"errorMessage": "Task timed out after 3.00 seconds"},
    }
    body.update(overrides)
    return json.dumps(body)


def test_invocation_records_name_the_cause() -> None:
    timeout = parse_invocation_record(record())
    assert timeout.task_id == "t" and timeout.timed_out
    assert failure_error(timeout)["type"].endswith("/timeout")
    sandbox = parse_invocation_record(record(responsePayload={"errorType": "Sandbox.Timedout", "errorMessage": "x"}))
    assert sandbox.timed_out
    crash = parse_invocation_record(record(responsePayload={"errorMessage": "Runtime exited with error"}))
    assert failure_error(crash)["type"].endswith("/worker-crashed")
    aged = parse_invocation_record(record(requestContext={"condition": "EventAgeExceeded"}, responsePayload=None))
    assert "never started" in failure_error(aged)["detail"]


@pytest.mark.parametrize("body", ["nope", "[1]", json.dumps({"requestPayload": {"task_id": ""}}), json.dumps({})])
def test_malformed_invocation_records_are_refused(body) -> None:
    with pytest.raises(NotAnInvocationRecord):
        parse_invocation_record(body)


def test_fail_unfinished_leaves_finished_tasks_alone() -> None:
    failure = parse_invocation_record(record())
    running = claim(Task(id="t", tenant="acme", type="sleep"))
    failed = fail_unfinished(failure)(running)
    assert failed.status is Status.FAILED and failed.error["type"].endswith("/timeout")
    assert fail_unfinished(failure)(failed) is None


class SimulatedJobContext:
    """Just what the ``sleep`` job uses, on a simulated clock: sleeping and each progress write advance it."""

    def __init__(self, write_s: float) -> None:
        self.now = 100.0
        self.write_s = write_s
        self.reports: list[tuple[float, int]] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds

    def progress(self, percent: float, message: str | None = None) -> None:
        self.now += self.write_s
        self.reports.append((self.now, int(percent)))


def test_the_sleep_job_lasts_its_seconds_whatever_its_progress_writes_cost() -> None:
    ctx = SimulatedJobContext(write_s=0.3)
    sleep_job = default_registry.get("sleep")

    sleep_job.function(sleep_job.parse({"seconds": 40, "steps": 10}), ctx)

    assert ctx.now == pytest.approx(140.0)  # 40 s from the start, not 40 + 9 × 0.3
    assert [percent for _, percent in ctx.reports] == list(range(10, 100, 10))
    assert [round(at - 100, 6) for at, _ in ctx.reports] == [4.3 + 4 * i for i in range(9)]


def test_a_sleep_whose_writes_outlast_a_step_never_sleeps_a_negative_time() -> None:
    ctx = SimulatedJobContext(write_s=2.0)
    sleep_job = default_registry.get("sleep")

    sleep_job.function(sleep_job.parse({"seconds": 4, "steps": 4}), ctx)

    assert len(ctx.reports) == 3
    assert ctx.now == pytest.approx(107.0)  # steps at 1, 3 (=1+2), 5 and 7 s: never waits, never sleeps < 0
