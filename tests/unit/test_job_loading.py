"""Users' job modules: the setting, the entry points, and the one-line cold-start errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from taskcast.jobs import JobModuleError, JobNameTaken, JobRegistry, default_registry
from taskcast.jobs.loading import load_job_modules
from taskcast.local.template import load_template, resources_of_type
from taskcast.settings import Settings


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    loader: Any

    def load(self) -> Any:
        return self.loader()


def no_entry_points() -> list[FakeEntryPoint]:
    return []


def test_the_setting_lists_module_names_comma_separated_whitespace_ignored() -> None:
    settings = Settings.from_env({"TASKCAST_JOB_MODULES": " report_jobs.render ,acme.jobs,, "})
    assert settings.job_modules == ("report_jobs.render", "acme.jobs")
    assert Settings.from_env({}).job_modules == ()


def test_the_settings_modules_are_imported_in_order_then_every_entry_point() -> None:
    imported: list[str] = []
    entry_points = [FakeEntryPoint("reports", "report_jobs.render", lambda: imported.append("entry point"))]
    loaded = load_job_modules(["a.jobs", "b.jobs"], lambda: entry_points, importer=imported.append)
    assert imported == ["a.jobs", "b.jobs", "entry point"]
    assert loaded == ["a.jobs", "b.jobs", "reports=report_jobs.render"]


def test_a_module_that_cannot_be_imported_fails_with_one_line_naming_it() -> None:
    with pytest.raises(JobModuleError) as raised:
        load_job_modules(["no_such_module_for_taskcast"], no_entry_points)
    message = str(raised.value)
    assert "\n" not in message
    assert "'no_such_module_for_taskcast' (TASKCAST_JOB_MODULES) cannot be imported" in message
    assert "ModuleNotFoundError" in message


def test_an_entry_point_that_fails_names_it_and_keeps_its_text_out_of_the_message() -> None:
    def broken() -> None:
        raise RuntimeError("password=hunter2")

    with pytest.raises(JobModuleError) as raised:
        load_job_modules([], lambda: [FakeEntryPoint("reports", "report_jobs.render", broken)])
    message = str(raised.value)
    assert message == ("entry point 'reports=report_jobs.render' (group taskcast.jobs) failed while importing: "
                       "RuntimeError")
    assert isinstance(raised.value.__cause__, RuntimeError)  # the traceback keeps the cause for the developer


def test_a_job_that_takes_a_builtins_name_fails_naming_the_job_and_both_functions() -> None:
    registry = default_registry.copy()

    def clashing_module(name: str) -> None:
        def sleep(job_input: Any, ctx: Any) -> None: ...

        registry.job("sleep")(sleep)

    with pytest.raises(JobModuleError) as raised:
        load_job_modules(["acme.jobs"], no_entry_points, importer=clashing_module)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("job module 'acme.jobs' (TASKCAST_JOB_MODULES): job 'sleep' of ")
    assert "taskcast.jobs.builtin" in message


def test_two_jobs_under_one_name_clash_and_the_same_function_again_does_not() -> None:
    registry = JobRegistry()

    def render(job_input: Any, ctx: Any) -> None: ...

    def other(job_input: Any, ctx: Any) -> None: ...

    registry.job("render-report")(render)
    registry.job("render-report")(render)  # a repeated import registers the same function: no-op
    assert registry.get("render-report").function is render
    with pytest.raises(JobNameTaken, match="job 'render-report' of .*other clashes"):
        registry.job("render-report")(other)
    assert registry.get("render-report").function is render


def test_the_template_hands_the_job_modules_to_the_rest_and_worker_functions_only() -> None:
    template = load_template()
    assert template["Parameters"]["JobModules"]["Default"] == ""
    functions = resources_of_type(template, "AWS::Serverless::Function")
    given = {logical_id for logical_id, resource in functions.items()
             if resource["Properties"].get("Environment", {}).get("Variables", {}).get("TASKCAST_JOB_MODULES")
             == {"Ref": "JobModules"}}
    assert given == {"RestFunction", "WorkerFunction", "LargeWorkerFunction"}
