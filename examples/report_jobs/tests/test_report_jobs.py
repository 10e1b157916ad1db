"""The job on its own: a stand-in context records progress, or cancels."""

import pytest
from pydantic import ValidationError
from report_jobs.render import ReportInput, render

from taskcast.jobs import Cancelled


class RecordingContext:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.reports: list[tuple[float, str | None]] = []
        self.cancel_after = cancel_after

    def progress(self, percent: float, message: str | None = None) -> None:
        if self.cancel_after is not None and len(self.reports) >= self.cancel_after:
            raise Cancelled("task-1")
        self.reports.append((percent, message))


def test_render_totals_each_section_and_reports_progress_between_them() -> None:
    ctx = RecordingContext()
    result = render(ReportInput(title="Q3", sections=[[1, 2], [3], [4.5]]), ctx)  # type: ignore[arg-type]
    assert result == {"title": "Q3", "totals": [3, 3, 4.5], "total": 10.5}
    assert [round(percent) for percent, _ in ctx.reports] == [33, 67]


def test_a_cancelled_task_stops_at_its_next_progress_report() -> None:
    with pytest.raises(Cancelled):
        render(ReportInput(title="Q3", sections=[[1], [2], [3]]), RecordingContext(cancel_after=1))  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [{"title": "Q3", "sections": []}, {"title": "", "sections": [[1]]},
                                 {"title": "Q3", "sections": [[1]], "colour": "red"}])
def test_inputs_outside_the_model_are_refused(raw: dict) -> None:
    with pytest.raises(ValidationError):
        ReportInput.model_validate(raw)
