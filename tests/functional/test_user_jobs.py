"""A user's own job (``examples/report_jobs``) in the same deployment: loaded at cold start from
``TASKCAST_JOB_MODULES`` or from its package's ``taskcast.jobs`` entry point, validated by the REST handler
(400 problems), described in ``/openapi.json`` and run by the worker, all on moto."""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from handlers import rest, worker
from taskcast.api.deps import ApiDeps
from taskcast.jobs import JobModuleError, default_registry
from taskcast.jobs.loading import ENTRY_POINT_GROUP
from taskcast.settings import Settings
from taskcast.worker_runtime import WorkerDeps
from tests.functional.rest_harness import FakeLambdaContext, Reply, proxy_event
from tests.functional.serial_client import serialized_dynamodb

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "report_jobs"
JOB = "render-report"
REPORT = {"title": "Q3", "sections": [[1, 2], [3], [4.5]]}


def no_entry_points() -> list[EntryPoint]:
    return []


def declared_entry_points() -> list[EntryPoint]:
    """The entry points the example's pyproject.toml declares, as an installed package would list them."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    declared = project["entry-points"][ENTRY_POINT_GROUP]
    return [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in declared.items()]


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As a new Lambda process: the example importable but not yet imported, the default registry without its
    job; both are put back afterwards (the example's own tests may have imported it already)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in [name for name in sys.modules if name == "report_jobs" or name.startswith("report_jobs.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(default_registry, "_specs", {name: spec for name, spec in default_registry._specs.items()
                                                     if name != JOB})
    yield


@pytest.fixture
def cold_start(dynamodb, settings: Settings, monkeypatch: pytest.MonkeyPatch):  # noqa: ARG001 - tables must exist
    """Builds the REST and worker functions' deps as their cold start does, from the environment."""

    def start(job_modules: str = "", entry_points: Any = no_entry_points) -> tuple[ApiDeps, WorkerDeps]:
        monkeypatch.setenv("TASKCAST_JOB_MODULES", job_modules)
        configured = Settings.from_env()
        api = ApiDeps.from_settings(configured, dynamodb=serialized_dynamodb(),
                                    invoke_worker=lambda task_id, worker_class: None, job_entry_points=entry_points)
        return api, WorkerDeps.from_settings(configured, job_entry_points=entry_points)

    return start


def call(deps: ApiDeps, method: str, path: str, body: Any = None, tenant: str | None = "acme") -> Reply:
    event = proxy_event(method, path, tenant=tenant, body=None if body is None else json.dumps(body))
    return Reply.from_proxy(rest.lambda_handler(event, FakeLambdaContext("taskcast-rest"), deps=deps))


def run_worker(deps: WorkerDeps, task_id: str) -> dict[str, Any]:
    return worker.lambda_handler({"task_id": task_id}, FakeLambdaContext("taskcast-worker"), deps=deps)


@pytest.mark.parametrize("source", ["setting", "entry point"])
def test_a_user_job_is_created_validated_run_and_described(cold_start, source: str) -> None:
    api, worker_deps = (cold_start("report_jobs.render") if source == "setting"
                        else cold_start(entry_points=declared_entry_points))

    created = call(api, "POST", "/tasks", {"type": JOB, "input": REPORT})
    assert created.status == 202, created.text
    task_id = created.json()["id"]
    assert run_worker(worker_deps, task_id) == {"task_id": task_id, "status": "SUCCEEDED"}

    assert call(api, "GET", f"/tasks/{task_id}").status == 303
    result = call(api, "GET", f"/tasks/{task_id}/result")
    assert result.json() == {"title": "Q3", "totals": [3, 3, 4.5], "total": 10.5}
    events = call(api, "GET", f"/tasks/{task_id}/events").json()
    assert [(entry["status"], entry["progress"]) for entry in events] == [
        ("PENDING", 0), ("RUNNING", 0), ("RUNNING", 33), ("RUNNING", 66), ("SUCCEEDED", 100)
    ]


@pytest.mark.parametrize(
    ("job_input", "named"),
    [({"title": "Q3", "sections": []}, "input.sections"), ({"title": "Q3"}, "input.sections"),
     ({"title": "Q3", "sections": [["x"]], "colour": "red"}, "input.colour"), ("a report", "input")],
)
def test_an_input_outside_the_jobs_model_is_a_400_problem_and_starts_nothing(
    cold_start, job_input: Any, named: str
) -> None:
    api, _ = cold_start("report_jobs.render")
    invoked: list[str] = []
    api.invoke_worker = lambda task_id, worker_class: invoked.append(task_id)
    reply = call(api, "POST", "/tasks", {"type": JOB, "input": job_input})
    assert reply.status == 400, reply.text
    assert reply.header("Content-Type") == "application/problem+json"
    problem = reply.json()
    assert problem["type"].endswith("/invalid-input")
    assert problem["detail"].startswith(f"invalid input for job {JOB!r}: ")
    assert named in problem["detail"]
    assert invoked == []


def test_openapi_lists_every_job_with_its_input_schema(cold_start) -> None:
    api, _ = cold_start("report_jobs.render")
    document = call(api, "GET", "/openapi.json", tenant=None).json()
    validate(document)  # still a valid OpenAPI 3.1 description
    jobs = document["x-taskcast-jobs"]
    assert set(jobs) == set(default_registry.names()) >= {"sleep", "fail", "invoke", "digest", JOB}
    assert jobs[JOB] == {"input": {"$ref": "#/components/schemas/JobInput.ReportInput"},
                         "description": "Totals each section of a report and the whole."}
    schema = document["components"]["schemas"]["JobInput.ReportInput"]
    assert schema["required"] == ["title", "sections"]
    assert schema["additionalProperties"] is False
    assert document["components"]["schemas"]["CreateTaskRequest"]["properties"]["type"]["enum"] == sorted(jobs)


def test_the_setting_and_the_entry_point_may_name_the_same_module(cold_start) -> None:
    api, worker_deps = cold_start("report_jobs.render", entry_points=declared_entry_points)
    assert JOB in api.registry.names()
    assert worker_deps.registry is api.registry


def test_a_module_that_cannot_be_imported_fails_the_cold_start_naming_it(cold_start) -> None:
    with pytest.raises(JobModuleError, match=r"^job module 'report_jobs\.missing' \(TASKCAST_JOB_MODULES\) "
                                             r"cannot be imported: ModuleNotFoundError"):
        cold_start("report_jobs.render, report_jobs.missing")


def test_a_job_named_like_a_builtin_fails_the_cold_start_naming_the_job(
    cold_start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "copycat_jobs.py").write_text(
        "from taskcast.jobs import job\n\n@job('sleep')\ndef sleep(job_input, ctx):\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "copycat_jobs", raising=False)
    with pytest.raises(JobModuleError) as raised:
        cold_start("copycat_jobs")
    message = str(raised.value)
    assert message.startswith("job module 'copycat_jobs' (TASKCAST_JOB_MODULES): job 'sleep' of copycat_jobs.sleep")
    assert "taskcast.jobs.builtin" in message and "\n" not in message
    assert default_registry.get("sleep").function.__module__ == "taskcast.jobs.builtin"
