"""The built-in jobs: ``sleep`` (the classic delay job), ``fail``, ``invoke`` (an existing Lambda) and
``digest`` (an uploaded object's SHA-256, size and lines; ``digest.py``)."""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskcast.jobs.context import JobContext
from taskcast.jobs.digest import register_digest
from taskcast.jobs.invokable import invoke_target, scrub_aws_text
from taskcast.jobs.registry import FunctionNotInvokable, JobFailed, JobRegistry
from taskcast.settings import Settings

logger = logging.getLogger(__name__)

# Lambda's longest run: a sleep cannot outlast the worker's own 15-minute limit.
MAX_SLEEP_S = 900
MAX_STEPS = 100


class SleepInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=MAX_SLEEP_S)
    steps: int | None = Field(default=None, ge=1, le=MAX_STEPS)


class FailInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(default="the job failed as asked", max_length=1000)


class InvokeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    function: str = Field(min_length=1, max_length=170)
    payload: Any = None


def allowed_target(job_input: InvokeInput, settings: Settings) -> str:
    """The function to invoke for this input, or ``FunctionNotInvokable`` (a 400 at create)."""
    target = invoke_target(job_input.function, settings.invokable_functions, settings.stack_functions)
    if target is None:
        raise FunctionNotInvokable(
            f"function {job_input.function!r} may not be invoked: the deployment lists the invokable functions "
            "(InvokableFunctions; locally TASKCAST_INVOKABLE_FUNCTIONS), and never the stack's own."
        )
    return target


def check_invoke(job_input: InvokeInput, settings: Settings) -> None:
    allowed_target(job_input, settings)


def sleep_plan(seconds: float, steps: int | None) -> list[tuple[float, int]]:
    """``(pause, percent)`` pairs: K steps over N seconds; the K-th step is the end, so it reports nothing.

    Default K = min(N, 10), at least 1.
    """
    count = steps if steps is not None else max(1, min(int(seconds), 10))
    pause = seconds / count
    return [(pause, round(100 * index / count)) for index in range(1, count + 1)]


def register_builtins(registry: JobRegistry) -> None:
    register_digest(registry)

    @registry.job("sleep", input_model=SleepInput)
    def sleep(job_input: SleepInput, ctx: JobContext) -> dict[str, Any]:
        plan = sleep_plan(job_input.seconds, job_input.steps)
        # Each step ends on a fixed schedule from the start, so the progress writes between the pauses
        # are not added to the job's length: a 40 s sleep takes 40 s, not 40 s plus ten writes.
        started, due = ctx.clock(), 0.0
        for index, (pause, percent) in enumerate(plan, start=1):
            due += pause
            ctx.sleep(max(0.0, started + due - ctx.clock()))
            if index < len(plan):
                ctx.progress(percent, message=f"step {index} of {len(plan)}")
        return {"slept_s": job_input.seconds, "steps": len(plan)}

    @registry.job("fail", input_model=FailInput)
    def fail(job_input: FailInput, ctx: JobContext) -> None:  # noqa: ARG001
        raise JobFailed(job_input.message)

    @registry.job("invoke", input_model=InvokeInput, check=check_invoke)
    def invoke(job_input: InvokeInput, ctx: JobContext) -> Any:
        # Checked again here: the list may have changed since the task was created.
        try:
            target = allowed_target(job_input, Settings.from_env())
        except FunctionNotInvokable as refusal:
            raise JobFailed(str(refusal), kind="function-not-invokable") from None
        try:
            answer = ctx.client("lambda").invoke(
                FunctionName=target,
                InvocationType="RequestResponse",
                Payload=json.dumps(job_input.payload).encode(),
            )
            raw = answer["Payload"].read()
        except Exception as failure:
            # AWS's error text names ARNs and the account id: the task's error gets a fixed text instead.
            logger.warning("invoke of %s failed: %s", job_input.function, type(failure).__name__)
            raise JobFailed(
                f"function {job_input.function!r} could not be invoked", kind="invoke-failed"
            ) from None
        payload = json.loads(raw) if raw else None
        if answer.get("FunctionError"):
            error: dict[str, Any] = payload if isinstance(payload, dict) else {"errorMessage": str(payload)}
            message = scrub_aws_text(str(error.get("errorMessage", "")))
            raise JobFailed(
                f"function {job_input.function!r} failed: {message or 'no message'}",
                function_error={
                    "errorType": scrub_aws_text(str(error.get("errorType", answer["FunctionError"]))),
                    "errorMessage": message,
                },
            )
        return payload
