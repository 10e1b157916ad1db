"""The worker handler: claim, run, finish; the built-in jobs; at-most-once runs for repeated invocations."""

from __future__ import annotations

import json
import uuid

import pytest

from handlers import worker
from taskcast.api.deps import LambdaWorkerInvoker
from taskcast.jobs import JobContext, default_registry
from taskcast.models import Status, Task
from taskcast.store import TaskStore
from taskcast.worker_runtime import WorkerDeps
from tests.functional.lambda_api_stub import Invocation, LambdaApiStub
from tests.functional.rest_harness import FakeLambdaContext


@pytest.fixture
def store(dynamodb, settings) -> TaskStore:
    return TaskStore(settings.tasks_table)


def make_deps(store: TaskStore, **changes) -> WorkerDeps:
    return WorkerDeps(store=store, registry=changes.pop("registry", default_registry.copy()), **changes)


def run(task_id: str, deps: WorkerDeps) -> dict:
    return worker.lambda_handler({"task_id": task_id}, FakeLambdaContext("taskcast-worker"), deps=deps)


def put(store: TaskStore, job_type: str, job_input=None) -> Task:
    return store.create(Task(id=str(uuid.uuid4()), tenant="acme", type=job_type, input=job_input))


def history(store: TaskStore, task_id: str) -> list[tuple[str, int]]:
    return [(entry["status"], entry["progress"]) for entry in store.history(task_id)]


def test_sleep_reports_k_minus_one_steps_then_succeeds(store: TaskStore) -> None:
    pauses: list[float] = []
    now = [0.0]

    def simulated_sleep(seconds: float) -> None:  # time passes only while the job sleeps
        pauses.append(seconds)
        now[0] += seconds

    task = put(store, "sleep", {"seconds": 2, "steps": 4})
    answer = run(task.id, make_deps(store, sleep=simulated_sleep, clock=lambda: now[0]))
    assert answer == {"task_id": task.id, "status": "SUCCEEDED"}
    assert pauses == [0.5, 0.5, 0.5, 0.5]
    assert history(store, task.id) == [
        ("PENDING", 0),
        ("RUNNING", 0),
        ("RUNNING", 25),
        ("RUNNING", 50),
        ("RUNNING", 75),
        ("SUCCEEDED", 100),
    ]
    assert store.get(task.id).result == {"slept_s": 2.0, "steps": 4}


def test_sleep_with_one_step_reports_nothing_between_running_and_the_end(store: TaskStore) -> None:
    task = put(store, "sleep", {"seconds": 3, "steps": 1})
    run(task.id, make_deps(store, sleep=lambda seconds: None))
    assert history(store, task.id) == [("PENDING", 0), ("RUNNING", 0), ("SUCCEEDED", 100)]


def test_a_second_invocation_for_the_same_task_runs_nothing(store: TaskStore) -> None:
    registry = default_registry.copy()
    calls: list[str] = []

    @registry.job("count")
    def count(job_input, ctx: JobContext) -> int:
        calls.append(ctx.task_id)
        return len(calls)

    task = put(store, "count")
    deps = make_deps(store, registry=registry)
    assert run(task.id, deps)["status"] == "SUCCEEDED"
    assert run(task.id, deps) == {"task_id": task.id, "status": None}
    assert calls == [task.id]
    assert store.get(task.id).version == 3


def test_fail_job_ends_failed_with_its_message(store: TaskStore) -> None:
    task = put(store, "fail", {"message": "no luck"})
    run(task.id, make_deps(store))
    failed = store.get(task.id)
    assert failed.status is Status.FAILED
    assert failed.error["type"].endswith("/job-failed")
    assert failed.error["detail"] == "no luck"


def test_result_over_the_inline_limit_fails_the_task(store: TaskStore) -> None:
    registry = default_registry.copy()
    registry.job("big")(lambda job_input, ctx: "x" * 500)
    task = put(store, "big")
    run(task.id, make_deps(store, registry=registry, inline_limit_bytes=100))
    failed = store.get(task.id)
    assert failed.status is Status.FAILED
    assert failed.error["type"].endswith("/result-too-large")


def test_task_of_an_unknown_type_fails_instead_of_staying_running(store: TaskStore) -> None:
    task = put(store, "vanished")
    run(task.id, make_deps(store))
    assert store.get(task.id).error["type"].endswith("/invalid-job")


def test_event_without_task_id_is_ignored(store: TaskStore) -> None:
    assert worker.lambda_handler({"nope": 1}, None, deps=make_deps(store)) == {"task_id": None, "status": None}


@pytest.fixture
def invokable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCAST_INVOKABLE_FUNCTIONS", "thumbnailer")


@pytest.mark.usefixtures("invokable")
def test_invoke_job_runs_an_existing_lambda_and_returns_its_payload(store: TaskStore) -> None:
    def answer(invocation: Invocation):
        return 200, {"X-Amz-Executed-Version": "$LATEST"}, json.dumps({"echo": invocation.payload}).encode()

    with LambdaApiStub(answer) as lambda_api:
        task = put(store, "invoke", {"function": "thumbnailer", "payload": {"image": "cat.png"}})
        run(task.id, make_deps(store, client_factory=lambda service: lambda_api.client()))
    assert lambda_api.invocations == [Invocation("thumbnailer", "RequestResponse", {"image": "cat.png"})]
    done = store.get(task.id)
    assert done.status is Status.SUCCEEDED
    assert done.result == {"echo": {"image": "cat.png"}}


@pytest.mark.usefixtures("invokable")
def test_invoke_job_function_error_fails_the_task_with_that_error(store: TaskStore) -> None:
    def answer(invocation: Invocation):
        error = {"errorType": "KeyError", "errorMessage": "'image'", "stackTrace": []}
        return 200, {"X-Amz-Function-Error": "Unhandled"}, json.dumps(error).encode()

    with LambdaApiStub(answer) as lambda_api:
        task = put(store, "invoke", {"function": "thumbnailer"})
        run(task.id, make_deps(store, client_factory=lambda service: lambda_api.client()))
    failed = store.get(task.id)
    assert failed.status is Status.FAILED
    assert failed.error["type"].endswith("/job-failed")
    assert failed.error["function_error"] == {"errorType": "KeyError", "errorMessage": "'image'"}
    assert "thumbnailer" in failed.error["detail"]


@pytest.mark.usefixtures("invokable")
def test_invoke_failures_never_put_aws_error_text_in_the_task(store: TaskStore) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:thumbnailer"

    def answer(invocation: Invocation):
        error = {"Type": "User", "message": f"Function not found: {arn}"}
        return 404, {"x-amzn-ErrorType": "ResourceNotFoundException"}, json.dumps(error).encode()

    with LambdaApiStub(answer) as lambda_api:
        task = put(store, "invoke", {"function": "thumbnailer"})
        run(task.id, make_deps(store, client_factory=lambda service: lambda_api.client()))
    failed = store.get(task.id)
    assert failed.status is Status.FAILED
    assert failed.error["type"].endswith("/invoke-failed")
    text = json.dumps(failed.error)
    assert "arn:" not in text and "123456789012" not in text, text


def test_invoke_job_refuses_a_function_no_longer_listed_without_invoking(store: TaskStore, monkeypatch) -> None:
    monkeypatch.setenv("TASKCAST_INVOKABLE_FUNCTIONS", "")
    with LambdaApiStub(lambda invocation: (200, {}, b"null")) as lambda_api:
        task = put(store, "invoke", {"function": "thumbnailer"})
        run(task.id, make_deps(store, client_factory=lambda service: lambda_api.client()))
    assert lambda_api.invocations == []
    failed = store.get(task.id)
    assert failed.status is Status.FAILED
    assert failed.error["type"].endswith("/function-not-invokable")


def test_rest_starts_the_worker_of_the_tasks_class_with_an_async_lambda_invoke(aws_mock) -> None:
    with LambdaApiStub(lambda invocation: (202, {}, b"")) as lambda_api:
        invoker = LambdaWorkerInvoker("taskcast-worker", "taskcast-worker-large", lambda_api.client())
        invoker("task-123", "standard")
        invoker("task-456", "large")
    assert lambda_api.invocations == [
        Invocation("taskcast-worker", "Event", {"task_id": "task-123"}),
        Invocation("taskcast-worker-large", "Event", {"task_id": "task-456"}),
    ]


# ---------------------------------------------------------------------- a job's own timeout
def test_a_job_past_its_own_timeout_fails_at_its_next_progress_report(store: TaskStore) -> None:
    registry = default_registry.copy()
    now = [0.0]
    seen: list[float] = []

    @registry.job("slow", timeout_s=10)
    def slow(job_input, ctx: JobContext) -> str:
        for _ in range(4):
            seen.append(ctx.remaining_s())
            now[0] += 4  # each step takes 4 s: the third report comes 12 s in
            ctx.progress(50)
        return "never"

    task = put(store, "slow")
    assert run(task.id, make_deps(store, registry=registry, clock=lambda: now[0]))["status"] == "FAILED"
    failed = store.get(task.id)
    assert failed.error["type"].endswith("/job-timeout")
    assert failed.error["detail"] == "the job ran past its timeout of 10 s"
    assert failed.error["timeout_s"] == 10
    # The job's remaining time counts down to its own timeout (below the Lambda context's 60 s).
    assert seen == [10, 6, 2]
    assert history(store, task.id) == [("PENDING", 0), ("RUNNING", 0), ("RUNNING", 50), ("RUNNING", 50),
                                       ("FAILED", 50)]


def test_a_job_that_returns_past_its_own_timeout_fails_and_its_result_is_dropped(store: TaskStore) -> None:
    registry = default_registry.copy()
    now = [0.0]

    @registry.job("late", timeout_s=5)
    def late(job_input, ctx: JobContext) -> dict:
        now[0] += 5.5
        return {"done": True}

    task = put(store, "late")
    run(task.id, make_deps(store, registry=registry, clock=lambda: now[0]))
    failed = store.get(task.id)
    assert failed.status is Status.FAILED
    assert failed.error["type"].endswith("/job-timeout")
    assert failed.result is None


def test_a_job_within_its_timeout_succeeds_and_one_without_sees_the_lambda_time(store: TaskStore) -> None:
    registry = default_registry.copy()
    now = [0.0]
    remaining: dict[str, float] = {}

    @registry.job("quick", timeout_s=900)
    def quick(job_input, ctx: JobContext) -> int:
        now[0] += 899
        ctx.progress(99)
        remaining["quick"] = ctx.remaining_s()
        return 1

    @registry.job("plain")
    def plain(job_input, ctx: JobContext) -> int:
        remaining["plain"] = ctx.remaining_s()
        return 2

    deps = make_deps(store, registry=registry, clock=lambda: now[0])
    assert [run(put(store, name).id, deps)["status"] for name in ("quick", "plain")] == ["SUCCEEDED", "SUCCEEDED"]
    lambda_left = FakeLambdaContext("taskcast-worker").get_remaining_time_in_millis() / 1000
    assert remaining["quick"] == pytest.approx(1)
    assert remaining["plain"] == pytest.approx(lambda_left, abs=1)


@pytest.mark.parametrize("timeout_s", [0, -1, 901])
def test_a_job_timeout_out_of_range_is_refused_at_registration(timeout_s: float) -> None:
    with pytest.raises(ValueError, match="timeout_s must be above 0 and at most 900 seconds"):
        default_registry.copy().job("bad", timeout_s=timeout_s)
