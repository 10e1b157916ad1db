"""The key under which a build is reused changes with whatever goes into the build, including files
behind a CodeUri symlink, and ignores Python's byte-code caches."""

from __future__ import annotations

from pathlib import Path

from taskcast.local.artifacts import build_parameters, cache_key
from taskcast.local.template import TEMPLATE_PATH, load_template

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Probe:
    Type: AWS::Serverless::Function
    Properties: {Handler: app.probe.handler, Runtime: python3.11, CodeUri: functions/}
"""


def _project(root: Path) -> Path:
    (root / "src" / "app").mkdir(parents=True)
    (root / "src" / "app" / "probe.py").write_text("def handler(event, context):\n    return 1\n")
    (root / "functions").mkdir()
    (root / "functions" / "app").symlink_to("../src/app")
    template = root / "template.yaml"
    template.write_text(TEMPLATE)
    return template


def _key(template: Path, **parameters: str) -> str:
    return cache_key(template, parameters, "python3.11", "x86_64", ["sam"])


def test_a_change_behind_a_codeuri_symlink_changes_the_key(tmp_path: Path) -> None:
    template = _project(tmp_path)
    before = _key(template)
    assert _key(template) == before
    (tmp_path / "src" / "app" / "probe.py").write_text("def handler(event, context):\n    return 2\n")
    assert _key(template) != before


def test_byte_code_caches_do_not_change_the_key(tmp_path: Path) -> None:
    template = _project(tmp_path)
    before = _key(template)
    (tmp_path / "src" / "app" / "__pycache__").mkdir()
    (tmp_path / "src" / "app" / "__pycache__" / "probe.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "src" / "app" / "stale.pyc").write_bytes(b"\0")
    assert _key(template) == before


def test_template_parameters_and_runtime_change_the_key(tmp_path: Path) -> None:
    template = _project(tmp_path)
    before = _key(template)
    assert _key(template, StageName="dev") != before
    assert cache_key(template, {}, "python3.12", "x86_64", ["sam"]) != before
    template.write_text(TEMPLATE.replace("Runtime: python3.11", "Runtime: python3.12"))
    assert _key(template) != before


def test_only_parameters_that_shape_the_build_reach_sam_build(tmp_path: Path) -> None:
    """A parameter used by events or environment only (CorsAllowedOrigins) must not cost a new build."""
    (tmp_path / "template.yaml").write_text(_BUILD_TEMPLATE)
    template = load_template(tmp_path / "template.yaml")
    overrides = {"Runtime": "python3.11", "Arch": "x86_64", "Code": "src/", "LayerRuntime": "python3.12",
                 "Origins": "https://app.example.com", "Stage": "prod"}
    assert build_parameters(template, overrides) == {
        "Runtime": "python3.11", "Arch": "x86_64", "Code": "src/", "LayerRuntime": "python3.12",
    }


def test_the_real_template_rebuilds_for_runtime_and_architecture_only() -> None:
    template = load_template(TEMPLATE_PATH)
    overrides = {"PythonRuntime": "python3.11", "Architecture": "x86_64", "CorsAllowedOrigins": "https://a.example",
                 "InvokableFunctions": "", "StageName": "dev"}
    assert build_parameters(template, overrides) == {"PythonRuntime": "python3.11", "Architecture": "x86_64"}


_BUILD_TEMPLATE = """\
Globals:
  Function:
    Runtime: !Ref Runtime
    Environment: {Variables: {ORIGINS: !Ref Origins}}
Resources:
  Probe:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.probe.handler
      Architectures: [!Ref Arch]
      CodeUri: !Sub "${Code}"
      Events: {Get: {Type: Api, Properties: {Path: /x, Method: GET, RestApiId: !Ref Stage}}}
  Deps:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: deps/}
    Metadata: {BuildMethod: !Ref LayerRuntime}
"""
