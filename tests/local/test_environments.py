"""Functions run as Lambda runs them: processes of their own started by AWS's runtime interface client
(awslambdaric) from an artifact folder, driven through the local Runtime API. Each test starts real
processes from a small artifact written here, with the interpreter that holds only what Lambda's
Python runtime provides."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from taskcast.local.async_invoke import AsyncInvoker
from taskcast.local.environments import EnvironmentPool, InitSlots, Launch, output_level, process_environment
from taskcast.local.functions import FunctionRegistry, LocalFunction
from taskcast.local.lambda_api import LambdaApi
from taskcast.local.runtime_api import Handover, RuntimeApi
from taskcast.local.runtime_env import lambda_runtime_python

pytestmark = pytest.mark.timeout(90)

HANDLERS = '''
import json, os, sys, threading, time

def describe(event, context):
    return {"pid": os.getpid(), "request_id": context.aws_request_id, "function": context.function_name,
            "memory": context.memory_limit_in_mb, "remaining_ms": context.get_remaining_time_in_millis(),
            "arn": context.invoked_function_arn, "cwd": os.getcwd(), "path0": sys.path[0],
            "mine": os.environ.get("ONLY_MINE"), "other": os.environ.get("OTHER_FUNCTIONS"),
            "trace": os.environ.get("_X_AMZN_TRACE_ID"), "event": event}

def sleepy(event, context):
    print("sleeping in", os.getpid(), flush=True)
    time.sleep(event.get("seconds", 30))
    return {"pid": os.getpid(), "slept": event.get("seconds", 30)}

def fail(event, context):
    raise ValueError("asked to fail")

def slow_init_marker(event, context):
    return "never"

def project_library(event, context):
    import pydantic  # a dependency the artifact does not carry
    return "unreachable"
'''


@pytest.fixture(scope="module")
def runtime_python() -> Path:
    return lambda_runtime_python()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("artifact")
    (folder / "app.py").write_text(HANDLERS)
    (folder / "slow_init.py").write_text("import time\ntime.sleep(3)\n\ndef handler(event, context):\n"
                                         "    return {'after': 'init'}\n")
    (folder / "broken.py").write_text("import module_that_is_not_there\n\ndef handler(event, context):\n    return 1\n")
    return folder


def _function(handler: str, timeout_s: float = 5.0, name: str = "probe") -> LocalFunction:
    return LocalFunction("Probe", f"taskcast-{name}", f"arn:aws:lambda:us-east-1:123456789012:function:taskcast-{name}",
                         handler, timeout_s=timeout_s, memory_mb=256)


@pytest.fixture
def pools() -> Iterator[list[EnvironmentPool]]:
    made: list[EnvironmentPool] = []
    yield made
    for pool in made:
        pool.close()


@pytest.fixture
def run(runtime_python: Path, artifact: Path, pools: list[EnvironmentPool]):
    def make(handler: str, *, timeout_s: float = 5.0, cap: int = 4, variables: dict[str, str] | None = None,
             name: str = "probe") -> LocalFunction:
        function = _function(handler, timeout_s, name)
        pool = EnvironmentPool(function, Launch(runtime_python, artifact), variables or {}, "us-east-1", cap)
        function.runner = pool
        pools.append(pool)
        return function

    return make


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_a_function_runs_in_its_own_process_from_its_artifact_with_only_its_environment(run, artifact: Path) -> None:
    function = run("app.describe", variables={"ONLY_MINE": "yes"})
    first = function.invoke({"n": 1}, request_id="req-1")
    second = function.invoke({"n": 2}, request_id="req-2")
    assert not first.failed, first.error
    payload = first.payload
    assert payload["pid"] != os.getpid() and second.payload["pid"] == payload["pid"]  # warm: the same environment
    assert payload["cwd"] == str(artifact) and payload["path0"] == str(artifact)
    assert payload["mine"] == "yes" and payload["other"] is None
    assert payload["request_id"] == "req-1" and payload["function"] == "taskcast-probe" and payload["memory"] == "256"
    assert payload["arn"].endswith(":function:taskcast-probe") and payload["trace"].startswith("Root=1-")
    assert 0 < payload["remaining_ms"] <= 5000 and payload["event"] == {"n": 1}


def test_the_project_venv_is_not_on_a_functions_path(run) -> None:
    invocation = run("app.project_library").invoke({})
    assert invocation.failed and invocation.error["errorType"] == "ModuleNotFoundError"


def test_an_exception_is_lambdas_error_object_and_the_environment_stays_warm(run) -> None:
    function = run("app.fail")
    invocation = function.invoke({}, request_id="req-fail")
    assert invocation.failed and not invocation.timed_out
    assert invocation.error["errorType"] == "ValueError" and invocation.error["errorMessage"] == "asked to fail"
    assert invocation.error["stackTrace"]
    function.invoke({})
    assert function.runner.describe()["cold_starts"] == 1


def test_a_timeout_kills_the_process_and_the_next_invocation_is_a_cold_start(run) -> None:
    function = run("app.sleepy", timeout_s=1.0)
    warm = function.invoke({"seconds": 0})
    invocation = function.invoke({"seconds": 30}, request_id="req-slow")
    assert invocation.timed_out and invocation.failed
    assert invocation.error["errorMessage"].endswith("req-slow Task timed out after 1.00 seconds")
    assert not _alive(warm.payload["pid"])
    after = function.invoke({"seconds": 0})
    assert not after.failed and after.payload["pid"] != warm.payload["pid"]
    assert function.runner.describe()["cold_starts"] == 2


def test_an_import_error_is_an_init_error_named_after_the_function(run, caplog: pytest.LogCaptureFixture) -> None:
    function = run("broken.handler", name="broken")
    with caplog.at_level(logging.ERROR, logger="taskcast.local"):
        invocation = function.invoke({})
    assert invocation.failed and invocation.error["errorType"] == "Runtime.ImportModuleError"
    assert "module_that_is_not_there" in invocation.error["errorMessage"]
    assert any("taskcast-broken: init failed" in record.getMessage() for record in caplog.records)
    assert function.runner.describe()["init_errors"] == 1


def test_the_reserved_concurrency_caps_environments_and_the_excess_waits(run) -> None:
    function = run("app.sleepy", cap=1)
    outcomes: list[dict] = []
    threads = [threading.Thread(target=lambda: outcomes.append(function.invoke({"seconds": 0.3}).payload))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == 3 and len({outcome["pid"] for outcome in outcomes}) == 1
    assert function.runner.describe()["environments"] == 1


def test_cold_starts_of_the_whole_stack_take_turns_for_the_machines_cores(runtime_python: Path, artifact: Path,
                                                                          pools: list[EnvironmentPool]) -> None:
    slots = InitSlots(1)
    functions = []
    for name in ("first", "second"):
        function = _function("app.sleepy", name=name)
        function.runner = EnvironmentPool(function, Launch(runtime_python, artifact), {}, "us-east-1", 4, slots)
        pools.append(function.runner)
        functions.append(function)
    outcomes: list[object] = []
    threads = [threading.Thread(target=lambda f=function: outcomes.append(f.invoke({"seconds": 0.2}).payload))
               for function in functions for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 6 and all(outcomes)
    assert slots.peak == 1 and slots.in_use == 0


def test_a_reserved_concurrency_of_zero_throttles_every_invocation() -> None:
    function = _function("app.describe")
    function.reserved_concurrency = 0
    invocation = function.invoke({})
    assert invocation.failed and invocation.error["errorType"] == "TooManyRequestsException"


def test_a_caller_that_stops_waiting_leaves_the_invocation_running_to_its_end(run) -> None:
    function = run("app.sleepy", timeout_s=10.0, cap=1)
    cut = function.invoke({"seconds": 1.0}, wait_s=0.2)
    assert cut.cut and not cut.timed_out
    after = function.invoke({"seconds": 0})  # waits for the one environment, which finishes, not killed
    assert not after.failed and function.runner.describe()["cold_starts"] == 1


def test_the_callers_wait_covers_the_cold_start_which_then_runs_on(run) -> None:
    function = run("slow_init.handler", timeout_s=10.0, cap=1)
    started = time.monotonic()
    cut = function.invoke({}, wait_s=0.5)
    assert cut.cut and time.monotonic() - started < 2.5  # not the 3 s the import takes
    after = function.invoke({})  # waits for the one environment, which finishes its init and the cut invocation
    assert after.payload == {"after": "init"}
    assert function.runner.describe()["cold_starts"] == 1 and function.runner.describe()["invocations"] == 2


def test_a_caller_that_stops_waiting_while_queued_drops_the_invocation(run) -> None:
    function = run("app.sleepy", timeout_s=10.0, cap=1)
    first = threading.Thread(target=lambda: function.invoke({"seconds": 1.5}))
    first.start()
    cut = function.invoke({"seconds": 0}, wait_s=0.3)  # the one environment is busy: queued, then given up
    first.join(30)
    assert cut.cut
    assert function.runner.describe()["invocations"] == 1


def test_a_functions_first_environment_starts_without_waiting_for_an_init_slot(runtime_python: Path, artifact: Path,
                                                                              pools: list[EnvironmentPool]) -> None:
    slots = InitSlots(1)
    slots.in_use = 1  # every slot taken by other functions' cold starts
    function = _function("app.describe")
    function.runner = EnvironmentPool(function, Launch(runtime_python, artifact), {}, "us-east-1", 4, slots)
    pools.append(function.runner)
    assert not function.invoke({}, wait_s=20).failed
    assert slots.in_use == 1


def _tagged_line_seen(caplog: pytest.LogCaptureFixture) -> bool:
    return any(record.getMessage().startswith("[taskcast-talker abcdef12] sleeping in") for record in caplog.records)


def test_output_is_tagged_with_the_function_and_request_id(run, caplog: pytest.LogCaptureFixture) -> None:
    function = run("app.sleepy", name="talker")
    with caplog.at_level(logging.DEBUG, logger="taskcast.local.functions"):
        invocation = function.invoke({"seconds": 0}, request_id="abcdef12-3456")
        # The function's own output comes through its stdout pipe, read by another thread than the one that
        # ends the invocation: wait (bounded) for it rather than racing it.
        deadline = time.monotonic() + 10
        while not _tagged_line_seen(caplog) and time.monotonic() < deadline:
            threading.Event().wait(0.05)
        lines = [record.getMessage() for record in caplog.records]
    assert not invocation.failed
    assert any(line.startswith("[taskcast-talker abcdef12] sleeping in") for line in lines), lines
    assert any("REPORT RequestId: abcdef12-3456" in line and "Memory Size: 256 MB" in line for line in lines)


def test_boto3_invoke_reports_function_errors_as_lambda_does(run) -> None:
    failing = run("app.fail", name="failing")
    working = run("app.describe", name="working")
    functions = FunctionRegistry([failing, working])
    invoker = AsyncInvoker(functions, lambda arn, record: None)
    api = LambdaApi(functions, invoker)
    api.start()
    try:
        client = boto3.client("lambda", endpoint_url=api.url, region_name="us-east-1", aws_access_key_id="x",
                              aws_secret_access_key="x")
        answer = client.invoke(FunctionName="taskcast-failing", Payload=b"{}")
        assert answer["FunctionError"] == "Unhandled"
        assert json.loads(answer["Payload"].read())["errorType"] == "ValueError"
        answer = client.invoke(FunctionName="taskcast-working", Payload=b'{"x": 1}')
        assert "FunctionError" not in answer and json.loads(answer["Payload"].read())["event"] == {"x": 1}
    finally:
        api.stop()
        invoker.stop()


def test_the_runtime_api_sends_every_header_the_real_one_sends() -> None:
    api = RuntimeApi("probe")
    api.start()
    try:
        handover = Handover("req-9", b'{"a": 1}', 1_900_000_000_000, "arn:aws:lambda:us-east-1:1:function:f",
                            client_context='{"custom": {}}', cognito_identity='{"cognitoIdentityId": "x"}')
        api.hand_over(handover)
        with urllib.request.urlopen(f"http://{api.address}/2018-06-01/runtime/invocation/next", timeout=10) as answer:
            headers, body = answer.headers, answer.read()
        assert body == b'{"a": 1}'
        assert headers["Lambda-Runtime-Aws-Request-Id"] == "req-9"
        assert headers["Lambda-Runtime-Deadline-Ms"] == "1900000000000"
        assert headers["Lambda-Runtime-Invoked-Function-Arn"] == "arn:aws:lambda:us-east-1:1:function:f"
        assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
        assert headers["Lambda-Runtime-Client-Context"] == '{"custom": {}}'
        assert headers["Lambda-Runtime-Cognito-Identity"] == '{"cognitoIdentityId": "x"}'
        request = urllib.request.Request(f"http://{api.address}/2018-06-01/runtime/invocation/req-9/response",
                                         data=b'"done"', method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202
        assert handover.done.is_set() and handover.response == b'"done"'
    finally:
        api.stop()


def test_the_process_environment_keeps_lambdas_reserved_names(runtime_python: Path, artifact: Path) -> None:
    function = _function("app.describe")
    launch = Launch(runtime_python, artifact, (artifact / "layer",), "python3.11", ("/extra",))
    environment = process_environment(function, launch, {"AWS_LAMBDA_FUNCTION_NAME": "spoofed", "X": "1"},
                                      "127.0.0.1:9001", "eu-west-1")
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "taskcast-probe" and environment["X"] == "1"
    assert environment["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001" and environment["AWS_REGION"] == "eu-west-1"
    assert environment["_HANDLER"] == "app.describe" and environment["LAMBDA_TASK_ROOT"] == str(artifact)
    assert environment["PYTHONPATH"].split(os.pathsep) == [
        str(artifact), str(artifact / "layer/python/lib/python3.11/site-packages"), str(artifact / "layer/python"),
        "/extra"]


@pytest.mark.parametrize(("line", "level"), [
    ("[WARNING]\t2026-12-02T00:00:00.000Z\treq\tinjected poison record", logging.WARNING),
    ("[ERROR] Runtime.ImportModuleError: Unable to import module", logging.ERROR),
    ('{"level":"DEBUG","location":"x","message":"hello"}', logging.DEBUG),
    ('{"level": "error", "message": "boom"}', logging.ERROR),
    ('{"not": "a log"}', logging.INFO),
    ("plain print output", logging.INFO),
    ("{broken json with \"level\"", logging.INFO),
])
def test_function_output_keeps_its_own_log_level(line: str, level: int) -> None:
    assert output_level(line) == level
