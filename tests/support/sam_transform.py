"""template.yaml as CloudFormation receives it: the SAM transform applied (by the SAM CLI's own translator).

The SAM translator is not in the project's environment (cfn-lint no longer ships it), so it runs in the
SAM CLI's virtualenv — the one ``make sam`` installs and ``sam build`` already needs — as a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from taskcast.local.artifacts import sam_command

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"

_SCRIPT = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

template = yaml_parse(open(sys.argv[1]).read())
# What `sam package` does first: local code folders become S3 objects.
template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
for resource in template["Resources"].values():
    properties = resource.get("Properties") or {}
    if resource.get("Type") == "AWS::Serverless::Function":
        properties["CodeUri"] = "s3://artifacts/code.zip"
    if resource.get("Type") == "AWS::Serverless::LayerVersion":
        properties["ContentUri"] = "s3://artifacts/layer.zip"
parameters = json.loads(sys.argv[2])
print(json.dumps(transform(template, parameters, NoManagedPolicies())))
"""


def sam_python() -> str | None:
    """The interpreter of the SAM CLI that ``sam build`` uses (its script's shebang)."""
    try:
        sam = sam_command()[0]
    except Exception:
        return None
    path = shutil.which(sam) or sam
    try:
        first_line = Path(path).read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    return first_line[2:].strip() if first_line.startswith("#!") and "python" in first_line else None


@cache
def _transformed(template_text: str, parameters_json: str) -> dict[str, Any]:
    python = sam_python()
    if python is None:
        pytest.skip("the SAM CLI (with its translator) is not installed: run `make sam`")
    source = TEMPLATE.parent / ".sam-transform-input.yaml"
    source.write_text(template_text)
    try:
        env = {**os.environ, "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"}
        done = subprocess.run(
            [python, "-c", _SCRIPT, str(source), parameters_json],
            capture_output=True, text=True, check=False, env=env, timeout=120,
        )
    finally:
        source.unlink(missing_ok=True)
    if done.returncode != 0:
        raise AssertionError(f"the SAM transform failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def transformed_template(parameters: dict[str, str] | None = None, template_text: str | None = None) -> dict[str, Any]:
    """The CloudFormation template SAM makes of template.yaml (``AWS::Region`` is ``eu-west-1``)."""
    text = TEMPLATE.read_text() if template_text is None else template_text
    values = {"TenantsSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:t", **(parameters or {})}
    return _transformed(text, json.dumps(values, sort_keys=True))


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in template["Resources"].items() if body.get("Type") == resource_type}
