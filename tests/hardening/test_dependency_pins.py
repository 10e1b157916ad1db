"""Dependencies are locked: every requirement of the package and of its ``local`` and ``dev`` extras is pinned
(``==``) in ``constraints.txt`` at a version its specifier accepts, and the Makefile installs with it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt line {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = Version(version.split(";")[0].strip())
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    wanted = [*project["dependencies"], *extras.get("local", []), *extras.get("dev", [])]
    return [requirement for requirement in map(Requirement, wanted)
            if canonicalize_name(requirement.name) != canonicalize_name(project["name"])]


def test_every_declared_dependency_is_pinned_at_an_accepted_version() -> None:
    pins = _pins()
    requirements = _requirements()
    assert len(requirements) >= 10
    unpinned = [str(requirement) for requirement in requirements if canonicalize_name(requirement.name) not in pins]
    assert unpinned == []
    refused = [f"{requirement} vs {pins[canonicalize_name(requirement.name)]}" for requirement in requirements
               if not requirement.specifier.contains(pins[canonicalize_name(requirement.name)], prereleases=True)]
    assert refused == []


def test_the_makefile_installs_with_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = re.findall(r"pip install[^\n]*", makefile)
    assert installs and all("-c constraints.txt" in line for line in installs if " -e " in line or "'." in line)
    assert any("-c constraints.txt" in line for line in installs)
