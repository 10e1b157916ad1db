"""The job registry: job types by name, each with an optional pydantic model for its input.

Validation is a plain call (``registry.validate(name, input)``) so the REST layer refuses a bad
input with 400 at create time, and the worker parses it again before running the job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class JobSpec:
    name: str
    function: JobFunction
    input_model: type[BaseModel] | None = None
    check: JobCheck | None = None

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
        self, name: str, input_model: type[BaseModel] | None = None, check: JobCheck | None = None
    ) -> Callable[[JobFunction], JobFunction]:
        """Register ``fn(input, ctx) -> result`` under ``name``; ``check`` refuses inputs the deployment forbids.

        A name already taken by another function raises ``JobNameTaken``: a user's job must never replace a
        built-in, or another module's job, silently. The same function again is a no-op (a repeated import).
        """

        def register(function: JobFunction) -> JobFunction:
            existing = self._specs.get(name)
            if existing is not None:
                if existing.function is function:
                    return function
                raise JobNameTaken(name, existing.function, function)
            self._specs[name] = JobSpec(name=name, function=function, input_model=input_model, check=check)
            return function

        return register

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
