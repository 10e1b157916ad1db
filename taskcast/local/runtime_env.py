"""An interpreter with only what the Lambda Python runtime provides, to run built artifacts locally.

On Lambda a function finds boto3 and its closure in the runtime, its own code in the artifact and
everything else in its layers. Locally the artifacts run on ``<venv>/bin/python -m awslambdaric``
with ``PYTHONPATH=<artifact>:<layer>/python...`` and this virtualenv: it holds exactly
``deploy/lambda-runtime.txt`` (boto3, botocore and their dependencies, and AWS's runtime interface
client), never the project's own dependencies, so a package missing from the layer fails locally
as it would on AWS.

It is created on first use from the running interpreter and reused while the pin file is
unchanged (its hash names the folder); creation goes to a temporary folder renamed into place,
under a file lock, so concurrent first uses share one environment.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from taskcast.local.artifacts import PROJECT_ROOT, default_cache_root

RUNTIME_REQUIREMENTS = PROJECT_ROOT / "deploy" / "lambda-runtime.txt"
_OUTPUT_TAIL_LINES = 30


class RuntimeEnvError(RuntimeError):
    """The runtime virtualenv could not be created; the message carries the end of pip's output."""


def lambda_runtime_python(cache_root: Path | None = None, requirements: Path = RUNTIME_REQUIREMENTS) -> Path:
    """The python executable of the Lambda-runtime virtualenv, created on first use."""
    root = (cache_root or default_cache_root(PROJECT_ROOT / "template.yaml")).resolve()
    pins = requirements.read_bytes()
    tag = f"python{sys.version_info.major}.{sys.version_info.minor}"
    key = hashlib.sha256(pins + sys.executable.encode()).hexdigest()[:16]
    final = root / "runtime-env" / f"{tag}-{key}"
    python = final / "bin" / "python"
    if python.exists():
        return python
    (root / "runtime-env").mkdir(parents=True, exist_ok=True)
    with open(root / "runtime-env" / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists():  # another process made it while this one waited
            return python
        scratch = Path(tempfile.mkdtemp(prefix=f"{tag}-{key}-", dir=root / "runtime-env"))
        try:
            # Scripts the install writes name the scratch folder; nothing here runs them, only `python -m`.
            _run([sys.executable, "-m", "venv", str(scratch / "env")])
            _run([str(scratch / "env" / "bin" / "python"), "-m", "pip", "install", "--quiet",
                  "--disable-pip-version-check", "--no-input", "-r", str(requirements)])
            os.rename(scratch / "env", final)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return python


def _run(arguments: list[str]) -> None:
    result = subprocess.run(arguments, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-_OUTPUT_TAIL_LINES:])
        raise RuntimeEnvError(f"{' '.join(arguments[:4])} ... failed (exit {result.returncode}):\n{tail}")
