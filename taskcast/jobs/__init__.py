"""Jobs the worker can run. ``@job("name")`` registers ``fn(input, ctx) -> result`` in the default
registry, which already holds the built-ins ``sleep``, ``fail``, ``invoke`` and ``digest``; users' own job
modules join it at cold start (``with_user_jobs``, see ``loading.py``). ``external_job("name", ...)``
declares a job that a worker of the user's runs elsewhere, reporting with a task token."""

from collections.abc import Sequence

from taskcast.jobs.builtin import register_builtins
from taskcast.jobs.context import Cancelled, JobContext, JobTimedOut
from taskcast.jobs.loading import EntryPointSource, JobModuleError, installed_entry_points, load_job_modules
from taskcast.jobs.registry import (
    ExternalJob,
    InvalidJobInput,
    JobFailed,
    JobNameTaken,
    JobRegistry,
    JobSpec,
    UnknownJob,
)

default_registry = JobRegistry()
register_builtins(default_registry)
job = default_registry.job
external_job = default_registry.external_job


def with_user_jobs(modules: Sequence[str], entry_points: EntryPointSource = installed_entry_points) -> JobRegistry:
    """The default registry once the users' job modules (the setting's, then the entry points') are imported;
    raises ``JobModuleError``, failing the cold start, when one cannot be."""
    load_job_modules(modules, entry_points)
    return default_registry


__all__ = [
    "Cancelled",
    "EntryPointSource",
    "ExternalJob",
    "InvalidJobInput",
    "JobContext",
    "JobFailed",
    "JobModuleError",
    "JobNameTaken",
    "JobRegistry",
    "JobSpec",
    "JobTimedOut",
    "UnknownJob",
    "default_registry",
    "external_job",
    "installed_entry_points",
    "job",
    "with_user_jobs",
]
