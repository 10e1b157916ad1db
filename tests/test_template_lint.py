"""template.yaml passes cfn-lint (which runs the SAM transform itself) with zero errors."""

from __future__ import annotations

from pathlib import Path

from cfnlint.api import lint_file

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


def test_template_has_no_cfn_lint_errors() -> None:
    matches = lint_file(TEMPLATE)
    errors = [match for match in matches if match.rule.id.startswith("E")]
    assert errors == [], "\n".join(str(match) for match in errors)


def test_the_lint_check_does_catch_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("BillingMode: PAY_PER_REQUEST", "BillingMode: SOMETIMES", 1))
    assert any(match.rule.id.startswith("E") for match in lint_file(broken))
