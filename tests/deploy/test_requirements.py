"""deploy/dependencies/requirements.txt (the layer's packages) is what `make requirements` writes today."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy import requirements


def test_the_committed_layer_requirements_match_pyproject_and_constraints() -> None:
    assert requirements.OUTPUT.read_text() == requirements.render(), "out of date: run `make requirements`"


def test_every_line_is_pinned_and_runtime_provided_packages_stay_out() -> None:
    pins = requirements.read_constraints()
    lines = [line for line in requirements.OUTPUT.read_text().splitlines() if line and not line.startswith("#")]
    names = {requirements.canonical(line.split("==")[0]) for line in lines}
    assert all(f"=={pins[requirements.canonical(line.split('==')[0])][1]}" in line for line in lines)
    assert {"pydantic", "aws-lambda-powertools", "standardwebhooks", "requests-hardened", "websockets"} <= names
    assert not names & {"boto3", "botocore", "s3transfer"}


def test_a_pin_that_differs_from_the_installed_version_is_refused(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(requirements.CONSTRAINTS.read_text().replace("pydantic==", "pydantic==0.0.0+"))
    with pytest.raises(SystemExit, match="pydantic"):
        requirements.render(constraints=constraints)


def test_a_new_runtime_dependency_changes_the_file(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(requirements.PYPROJECT.read_text().replace('"websockets>=13",', '"websockets>=13", "PyYAML",'))
    assert "PyYAML==" in requirements.render(pyproject=pyproject)
    assert "PyYAML==" not in requirements.OUTPUT.read_text()
