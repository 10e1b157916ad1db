"""The ``render-report`` job: one total per section of a report, with progress as it goes."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskcast.jobs import JobContext, job


class ReportInput(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is a 400, not silently ignored
    title: str = Field(min_length=1, max_length=200)
    sections: list[list[float]] = Field(min_length=1, max_length=100, description="Each section's numbers")


@job("render-report", input_model=ReportInput)
def render(inp: ReportInput, ctx: JobContext) -> dict[str, Any]:
    """Totals each section of a report and the whole."""
    totals: list[float] = []
    for done, numbers in enumerate(inp.sections, start=1):
        totals.append(sum(numbers))
        if done < len(inp.sections):
            # Also the cancellation point: raises Cancelled once the task was cancelled, which ends the job.
            ctx.progress(100 * done / len(inp.sections), message=f"section {done} of {len(inp.sections)}")
    return {"title": inp.title, "totals": totals, "total": sum(totals)}
