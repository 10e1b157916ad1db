"""Jobs the worker can run. ``@job("name")`` registers ``fn(input, ctx) -> result`` in the default
registry, which already holds the built-ins ``sleep``, ``fail``, ``invoke`` and ``digest``."""

from taskcast.jobs.builtin import register_builtins
from taskcast.jobs.context import Cancelled, JobContext
from taskcast.jobs.registry import InvalidJobInput, JobFailed, JobRegistry, JobSpec, UnknownJob

default_registry = JobRegistry()
register_builtins(default_registry)
job = default_registry.job

__all__ = [
    "Cancelled",
    "InvalidJobInput",
    "JobContext",
    "JobFailed",
    "JobRegistry",
    "JobSpec",
    "UnknownJob",
    "default_registry",
    "job",
]
