"""The import-linter contracts in pyproject.toml hold for the tree, and a forbidden import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("taskcast", "handlers", "streams", "client_demo", "taskcast_client", "tools")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(  # noqa: S603 - the venv's own lint-imports
        [LINT_IMPORTS, "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the project's packages and contracts, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}  # noqa\n")


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    answer = lint_imports(tree)
    assert answer.returncode == 0, answer.stdout + answer.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("handlers/rest.py", "import streams.consumer", "handlers and streams never import each other"),
        ("taskcast/push/routes.py", "import handlers.websocket", "The core never imports an entry point"),
        ("taskcast/store.py", "import taskcast.local.stack", "Lambda code never reaches the local stack or the demo"),
        ("taskcast/local/stack.py", "import handlers.rest", "The local stack imports functions only by the template"),
        ("taskcast_client/client.py", "import taskcast.models", "The client SDK imports no server module"),
        ("taskcast_client/webhooks.py", "import standardwebhooks", "The client SDK imports no server module"),
        ("taskcast/store.py", "import taskcast_client", "The server never imports the client SDK"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tree: Path, module: str, line: str, contract: str) -> None:
    add_import(tree / module, line)
    answer = lint_imports(tree)
    assert answer.returncode != 0
    assert f"{contract}" in answer.stdout and "BROKEN" in answer.stdout, answer.stdout
