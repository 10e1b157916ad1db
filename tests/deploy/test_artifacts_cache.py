"""The key under which a build is reused changes with whatever goes into the build, including files
behind a CodeUri symlink, and ignores Python's byte-code caches."""

from __future__ import annotations

from pathlib import Path

from taskcast.local.artifacts import build_parameters, cache_key, local_packages
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


LAYERED = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Jobs:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: jobs/}
    Metadata: {BuildMethod: python3.11}
"""


def _layered_project(root: Path, requirements: str) -> Path:
    (root / "jobs").mkdir()
    (root / "jobs" / "requirements.txt").write_text(requirements)
    (root / "pkgs" / "mine" / "mine").mkdir(parents=True)
    (root / "pkgs" / "mine" / "mine" / "__init__.py").write_text("VERSION = 1\n")
    (root / "pkgs" / "mine" / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    template = root / "template.yaml"
    template.write_text(LAYERED)
    return template


def test_a_local_package_named_in_a_layers_requirements_counts_in_the_key(tmp_path: Path) -> None:
    """pip installs ./pkgs/mine from the project (where sam build runs): a change to it must rebuild, while the
    leftovers of pip building it there must not."""
    template = _layered_project(tmp_path, "-c ../constraints.txt\n./pkgs/mine  # mine\n")
    assert local_packages([tmp_path / "jobs"], tmp_path) == [tmp_path / "pkgs" / "mine"]
    before = _key(template)
    (tmp_path / "pkgs" / "mine" / "build" / "lib").mkdir(parents=True)
    (tmp_path / "pkgs" / "mine" / "build" / "lib" / "stale.py").write_text("")
    (tmp_path / "pkgs" / "mine" / "mine.egg-info").mkdir()
    (tmp_path / "pkgs" / "mine" / "mine.egg-info" / "PKG-INFO").write_text("")
    assert _key(template) == before
    (tmp_path / "pkgs" / "mine" / "mine" / "__init__.py").write_text("VERSION = 2\n")
    assert _key(template) != before


def test_only_local_paths_are_read_as_packages(tmp_path: Path) -> None:
    _layered_project(tmp_path, "\n".join([
        "# ./not-this", "report-jobs==0.1.0", "--extra-index-url https://pypi.example.com/simple",
        "-r other.txt", "-e ./pkgs/editable", "mine @ file:///opt/mine", "./pkgs/fast[speed]",
        "/abs/wheel-1.0-py3-none-any.whl; python_version >= '3.11'",
    ]) + "\n")
    assert local_packages([tmp_path / "jobs"], tmp_path) == sorted([
        tmp_path / "pkgs" / "editable", Path("/opt/mine"), tmp_path / "pkgs" / "fast",
        Path("/abs/wheel-1.0-py3-none-any.whl"),
    ])
