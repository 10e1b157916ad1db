"""The job registry: job types by name, each with an optional pydantic model for its input.

Validation is a plain call (``registry.validate(name, input)``) so the REST layer refuses a bad
input with 400 at create time, and the worker parses it again before running the job.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from taskcast.settings import Settings

JobFunction = Callable[[Any, Any], Any]
# A job's own check of a parsed input against the deployment's settings; raises InvalidJobInput.
JobCheck = Callable[[Any, Settings], None]


class UnknownJob(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown job type {name!r}; known types: {', '.join(sorted(known)) or 'none'}")
        self.name = name


class JobNameTaken(ValueError):
    """A second, different job under a name already registered (a built-in's or another module's)."""

    def __init__(self, name: str, existing: JobFunction, new: JobFunction) -> None:
        super().__init__(
            f"job {name!r} of {_where(new)} clashes with the job {name!r} already registered by {_where(existing)}"
        )
        self.name = name


def _caller_module(depth: int = 2) -> str:
    """The module that called the registering function (named in clash messages)."""
    frame = sys._getframe(depth)
    return str(frame.f_globals.get("__name__", "?"))


def _where(function: JobFunction) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


class InvalidJobInput(ValueError):
    """The input does not fit the job's model; the message lists what is wrong, for a 400 problem."""

    kind = "invalid-input"
    title = "Invalid job input"


class FunctionNotInvokable(InvalidJobInput):
    """The ``invoke`` job names a function the deployment does not allow."""

    kind = "function-not-invokable"
    title = "Function not invokable"


class JobFailed(Exception):
    """A job's own way to fail with a chosen problem ``kind`` and extra fields for the task's error."""

    def __init__(self, detail: str, *, kind: str = "job-failed", **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.kind = kind
        self.extra = extra


# The worker functions a job can run on, by memory: the template's ``WorkerFunction`` (1,024 MB) and
# ``LargeWorkerFunction`` (``LargeWorkerMemorySize``, 4,096 MB by default); Lambda gives CPU in proportion.
WorkerClass = Literal["standard", "large"]
WORKER_CLASSES: tuple[WorkerClass, ...] = ("standard", "large")


class UnknownWorkerClass(ValueError):
    def __init__(self, job: str, memory: str) -> None:
        super().__init__(f"job {job!r}: memory must be one of {', '.join(WORKER_CLASSES)}, not {memory!r}")


Handoff = Literal["sqs", "eventbridge", "lambda"]
HANDOFFS: tuple[Handoff, ...] = ("sqs", "eventbridge", "lambda")


# An external worker's heartbeat interval: at least a second, at most half a day (the check hops SQS's
# 15-minute delay limit as often as it needs to, see ``taskcast.heartbeats``).
MIN_HEARTBEAT_S = 1
MAX_HEARTBEAT_S = 12 * 3600
# A job's own timeout: at most Lambda's 15 minutes, the longest the worker can run at all.
MAX_JOB_TIMEOUT_S = 900


@dataclass(frozen=True)
class ExternalJob:
    """A job run by a worker of the user's, elsewhere, that reports with a task token (``docs/jobs.md``).

    ``heartbeat_s``: the longest silence allowed, from the hand-off and then between two reports; a task whose
    worker stays silent longer ends ``FAILED`` with ``/heartbeat-timeout``.
    """

    heartbeat_s: int = 60
    # How the worker is handed its task: a message on the external jobs queue ("sqs"), an event on the
    # deployment's event bus ("eventbridge"), or an asynchronous invoke of ``function`` ("lambda").
    handoff: Handoff = "sqs"
    function: str | None = None

    def __post_init__(self) -> None:
        if not MIN_HEARTBEAT_S <= self.heartbeat_s <= MAX_HEARTBEAT_S:
            raise ValueError(f"heartbeat_s must be from {MIN_HEARTBEAT_S} to {MAX_HEARTBEAT_S} seconds")
        if self.handoff not in HANDOFFS:
            raise ValueError(f"handoff must be one of {', '.join(HANDOFFS)}, not {self.handoff!r}")
        if (self.handoff == "lambda") != bool(self.function):
            raise ValueError('a function is named with handoff="lambda", and only then')


class RunsElsewhere(JobFailed):
    """An external job reached the Lambda worker, which never runs one."""


@dataclass(frozen=True)
class JobSpec:
    name: str
    function: JobFunction
    input_model: type[BaseModel] | None = None
    check: JobCheck | None = None
    external: ExternalJob | None = None
    memory: WorkerClass = "standard"  # which worker function runs it (``WORKER_CLASSES``)
    timeout_s: float | None = None  # the job's own limit; None: the worker's (its Lambda timeout)

    def parse(self, raw_input: Any) -> Any:
        """The job's input as the function receives it (a model instance when the job declares one)."""
        if self.input_model is None:
            return raw_input
        try:
            return self.input_model.model_validate({} if raw_input is None else raw_input)
        except ValidationError as error:
            raise InvalidJobInput(describe_validation_error(self.name, error)) from None


def describe_validation_error(job_name: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "input"
        problems.append(f"input.{where}: {item['msg']}" if where != "input" else f"input: {item['msg']}")
    return f"invalid input for job {job_name!r}: " + "; ".join(problems)


class JobRegistry:
    def __init__(self, specs: dict[str, JobSpec] | None = None) -> None:
        self._specs: dict[str, JobSpec] = dict(specs or {})

    def job(
        self,
        name: str,
        input_model: type[BaseModel] | None = None,
        check: JobCheck | None = None,
        *,
        memory: WorkerClass = "standard",
        timeout_s: float | None = None,
    ) -> Callable[[JobFunction], JobFunction]:
        """Register ``fn(input, ctx) -> result`` under ``name``; ``check`` refuses inputs the deployment forbids;
        ``memory="large"`` runs it on the large worker function.

        ``timeout_s`` (above 0, at most 900): the job's own time limit. ``ctx.remaining_s()`` counts down to it,
        and a job still running past it ends ``FAILED`` with ``/job-timeout`` at its next ``ctx.progress()`` or
        when it returns (its result is dropped).

        A name already taken by another function raises ``JobNameTaken``: a user's job must never replace a
        built-in, or another module's job, silently. The same function again is a no-op (a repeated import).
        """
        if timeout_s is not None and not 0 < timeout_s <= MAX_JOB_TIMEOUT_S:
            raise ValueError(f"job {name!r}: timeout_s must be above 0 and at most {MAX_JOB_TIMEOUT_S} seconds")

        def register(function: JobFunction) -> JobFunction:
            existing = self._specs.get(name)
            if existing is not None:
                if existing.function is function:
                    return function
                raise JobNameTaken(name, existing.function, function)
            self._specs[name] = JobSpec(
                name=name, function=function, input_model=input_model, check=check, memory=memory,
                timeout_s=timeout_s,
            )
            return function

        if memory not in WORKER_CLASSES:
            raise UnknownWorkerClass(name, memory)

        return register

    def external_job(
        self,
        name: str,
        input_model: type[BaseModel] | None = None,
        *,
        heartbeat_s: int = 60,
        description: str | None = None,
        check: JobCheck | None = None,
        handoff: Handoff = "sqs",
        function: str | None = None,
    ) -> JobSpec:
        """Register a job that a worker of the user's runs elsewhere: creating its task sends the worker the
        input and a task token (on the external jobs queue, as an EventBridge event, or by an asynchronous
        invoke of ``function``: ``handoff``); the Lambda worker never runs it.

        Registering the same declaration again is a no-op (a repeated import); another one under a taken name
        raises ``JobNameTaken``.
        """
        external = ExternalJob(heartbeat_s=heartbeat_s, handoff=handoff, function=function)

        def runs_elsewhere(job_input: Any, ctx: Any) -> Any:  # noqa: ARG001 - the signature of every job
            raise RunsElsewhere(f"job {name!r} is run by an external worker, not by taskcast's worker",
                                kind="external-job")

        runs_elsewhere.__doc__ = description
        runs_elsewhere.__qualname__ = f"external_job({name!r})"
        runs_elsewhere.__module__ = _caller_module()
        existing = self._specs.get(name)
        if existing is not None:
            if (existing.external, existing.input_model, existing.check) == (external, input_model, check) and (
                existing.function.__module__ == runs_elsewhere.__module__
            ):
                return existing
            raise JobNameTaken(name, existing.function, runs_elsewhere)
        spec = JobSpec(name=name, function=runs_elsewhere, input_model=input_model, check=check, external=external)
        self._specs[name] = spec
        return spec

    def get(self, name: str) -> JobSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise UnknownJob(name, list(self._specs))
        return spec

    def validate(self, name: str, raw_input: Any, settings: Settings | None = None) -> Any:
        """Raise ``UnknownJob`` or ``InvalidJobInput``; return the parsed input otherwise.

        With ``settings``, the job's own check runs too (the REST API refuses such inputs at create).
        """
        spec = self.get(name)
        parsed = spec.parse(raw_input)
        if settings is not None and spec.check is not None:
            spec.check(parsed, settings)
        return parsed

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[JobSpec]:
        """Every job, by name."""
        return [self._specs[name] for name in self.names()]

    def copy(self) -> JobRegistry:
        """An independent registry with the same jobs (tests add their own jobs to a copy)."""
        return JobRegistry(self._specs)
