"""The template's Lambda artifacts, built by the real ``sam build`` for this machine's Python and CPU.

The local stack runs each function from what ``sam build`` produces (its code folder plus its layers'
``python/`` folders), so a missing dependency or a stray import fails locally as it would on Lambda.

A build is reused while nothing that goes into it changed: the key hashes the template, the
parameters, runtime and architecture, the ``sam`` command and the contents of every ``CodeUri`` /
``ContentUri`` folder the template names (symlinks followed, ``__pycache__`` and ``*.pyc`` ignored).
Builds go to a temporary folder renamed into place when complete, under a file lock, so two
processes starting at once share one build instead of corrupting it. ``sam build --cached`` keeps
the pip downloads between builds, so a code change rebuilds in seconds.

``sam build`` runs as a user's own ``sam build`` would, from the folder that holds the template: pip
resolves a relative path in a layer's ``requirements.txt`` (a user's job package named in
``deploy/jobs/requirements.txt``, docs/jobs.md) against the directory it runs in. The build runs in a view
of that folder (a symlink to each of its entries) under the cache root, so sam's ``.aws-sam/deps`` stays
beside the builds. Such a local package's files count in the key; as ``sam build --cached`` would reuse the
layer it installed while ``requirements.txt`` is unchanged, a change to them builds without the carried graph.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from taskcast.local.template import load_template

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR_ENV = "TASKCAST_LOCAL_BUILD_DIR"
SAM_ENV = "TASKCAST_SAM"
KEEP_BUILDS = 4  # older builds are removed; a running stack may still use one of the recent ones
_OUTPUT_TAIL_LINES = 40
_FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
_LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
_COMPLETE = ".taskcast-complete"
# A local package's build leftovers (pip builds in its folder) and tools' caches: not part of what it installs.
_PACKAGE_SKIPPED_DIRS = frozenset({"__pycache__", "build", "dist", ".git", ".venv", ".pytest_cache", ".mypy_cache",
                                   ".ruff_cache", ".tox", ".nox"})

_log = logging.getLogger("taskcast.local")


class ArtifactBuildError(RuntimeError):
    """``sam build`` could not run or failed; the message carries the end of its output."""


@dataclass(frozen=True)
class FunctionArtifact:
    code_dir: Path  # the function's built code folder (sam build's <build>/<LogicalId>)
    layer_dirs: tuple[Path, ...]  # each attached layer's built folder (the one holding python/), in Layers order


@dataclass(frozen=True)
class BuiltArtifacts:
    build_dir: Path
    runtime: str  # e.g. "python3.11"
    architecture: str  # "x86_64" | "arm64"
    functions: Mapping[str, FunctionArtifact]  # by logical id
    seconds: float  # how long the build took (0 when reused)
    reused: bool


def machine_runtime() -> tuple[str, str]:
    """The Lambda runtime and architecture that match the running interpreter and machine."""
    architecture = "arm64" if platform.machine().lower() in {"aarch64", "arm64"} else "x86_64"
    return f"python{sys.version_info.major}.{sys.version_info.minor}", architecture


def sam_command() -> list[str]:
    """``TASKCAST_SAM``, else the project's ``.venv-sam``, else ``sam`` on PATH."""
    if os.environ.get(SAM_ENV):
        return shlex.split(os.environ[SAM_ENV])
    project_sam = PROJECT_ROOT / ".venv-sam" / "bin" / "sam"
    if project_sam.exists():
        return [str(project_sam)]
    on_path = shutil.which("sam")
    if on_path:
        return [on_path]
    raise ArtifactBuildError(
        "no AWS SAM CLI found: run `make sam` (or `make run` / `make test`, which install it into .venv-sam), "
        f"or set {SAM_ENV} to a sam command"
    )


def default_cache_root(template_path: Path) -> Path:
    configured = os.environ.get(BUILD_DIR_ENV)
    return Path(configured) if configured else template_path.resolve().parent / ".aws-sam" / "taskcast-local"


# ---------------------------------------------------------------------- the cache key
def source_folders(template: Mapping[str, Any], base: Path) -> list[Path]:
    """Every local folder the template's functions and layers are built from."""
    uris: list[Any] = [((template.get("Globals") or {}).get("Function") or {}).get("CodeUri")]
    for resource in (template.get("Resources") or {}).values():
        properties = resource.get("Properties") or {}
        uris += [properties.get("CodeUri"), properties.get("ContentUri")]
        if resource.get("Type") == "AWS::Lambda::Function":
            uris.append(properties.get("Code"))
    folders = {(base / uri).resolve() for uri in uris if isinstance(uri, str) and not uri.startswith("s3://")}
    return sorted(folders)


# What sam build reads of a function or layer; any other property (environment, events, policies) leaves
# the artifacts unchanged, so a parameter used only there must not cost a new build.
_BUILD_PROPERTIES = ("CodeUri", "ContentUri", "Code", "Runtime", "Architectures", "Handler", "Layers",
                     "CompatibleRuntimes", "CompatibleArchitectures")
_BUILT_TYPES = {"AWS::Serverless::Function", "AWS::Serverless::LayerVersion", "AWS::Lambda::Function"}


def _referenced_names(value: Any) -> set[str]:
    """Parameter (or resource) names a template fragment refers to through ``Ref`` or ``Fn::Sub``."""
    if isinstance(value, list):
        return set().union(*(_referenced_names(item) for item in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    names: set[str] = set()
    for key, inner in value.items():
        if key == "Ref" and isinstance(inner, str):
            names.add(inner)
        elif key == "Fn::Sub":
            text = inner[0] if isinstance(inner, list) else inner
            if isinstance(text, str):
                names |= {name.split(".", 1)[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
            names |= _referenced_names(inner[1:] if isinstance(inner, list) else [])
        else:
            names |= _referenced_names(inner)
    return names


def build_parameters(template: Mapping[str, Any], parameters: Mapping[str, str]) -> dict[str, str]:
    """The overrides among ``parameters`` that can change what ``sam build`` produces."""
    fragments: list[Any] = [((template.get("Globals") or {}).get("Function") or {})]
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") in _BUILT_TYPES:
            fragments += [resource.get("Properties") or {}, resource.get("Metadata") or {}]
    names: set[str] = set()
    for fragment in fragments:
        names |= _referenced_names({key: fragment.get(key) for key in (*_BUILD_PROPERTIES, "BuildMethod",
                                                                        "BuildArchitecture") if key in fragment})
    return {name: value for name, value in parameters.items() if name in names}


def _files(folder: Path) -> Iterator[tuple[str, Path]]:
    if folder.is_file():
        yield folder.name, folder
        return
    for directory, subdirectories, names in os.walk(folder, followlinks=True):
        subdirectories[:] = sorted(name for name in subdirectories if name != "__pycache__")
        for name in sorted(names):
            if not name.endswith(".pyc"):
                path = Path(directory, name)
                yield path.relative_to(folder).as_posix(), path


def _requirement_path(line: str) -> str | None:
    """The local path a ``requirements.txt`` line installs from (``./pkg``, ``-e ../pkg``, ``name @ file:///pkg``,
    ``/wheels/pkg.whl``), or None for a package from an index, an option or a comment."""
    text = line.split(" #", 1)[0].strip()
    if text.startswith(("-e ", "--editable ", "--editable=")):
        text = text.split(None, 1)[1] if " " in text else text.partition("=")[2]
    elif text.startswith(("-", "#")) or not text:
        return None
    if "@" in text:
        text = text.split("@", 1)[1].strip()
    text = text.split(";", 1)[0].strip()
    if text.startswith("file:"):
        text = text.removeprefix("file:")
        text = "/" + text.lstrip("/") if text.startswith("//") else text
    if not text.startswith((".", "/", "~")):
        return None
    return re.sub(r"\[[^\]]*\]$", "", text)  # extras: ./pkg[fast]


def local_packages(folders: Sequence[Path], base: Path) -> list[Path]:
    """The local folders and files the ``requirements.txt`` of ``folders`` install from. pip resolves a relative
    path against the directory sam build runs in: the template's folder."""
    packages: set[Path] = set()
    for folder in folders:
        manifest = folder / "requirements.txt"
        if not manifest.is_file():
            continue
        for line in manifest.read_text(encoding="utf-8").splitlines():
            path = _requirement_path(line)
            if path is not None:
                packages.add((base / Path(path).expanduser()).resolve())
    return sorted(packages)


def _package_files(package: Path) -> Iterator[tuple[str, Path]]:
    if not package.is_dir():
        if package.exists():
            yield package.name, package
        return
    for directory, subdirectories, names in os.walk(package, followlinks=True):
        subdirectories[:] = sorted(name for name in subdirectories
                                   if name not in _PACKAGE_SKIPPED_DIRS and not name.endswith(".egg-info"))
        for name in sorted(names):
            if not name.endswith(".pyc"):
                path = Path(directory, name)
                yield path.relative_to(package).as_posix(), path


def _local_packages_digest(template_path: Path, folders: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for package in local_packages(folders, template_path.parent):
        digest.update(f"\0package {package}\0".encode())
        for relative, path in _package_files(package):
            digest.update(f"\0{relative}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(template_path: Path, parameters: Mapping[str, str], runtime: str, architecture: str,
              sam: Sequence[str]) -> str:
    template_path = template_path.resolve()
    digest = hashlib.sha256()
    digest.update(template_path.read_bytes())
    digest.update(json.dumps([sorted(parameters.items()), runtime, architecture, list(sam)]).encode())
    folders = source_folders(load_template(template_path), template_path.parent)
    for folder in folders:
        digest.update(f"\0folder {folder}\0".encode())
        for relative, path in _files(folder):
            digest.update(f"\0{relative}\0".encode())
            digest.update(path.read_bytes())
    digest.update(f"\0packages {_local_packages_digest(template_path, folders)}\0".encode())
    return digest.hexdigest()[:20]


def check_buildable(template: Mapping[str, Any]) -> None:
    """Name the functions ``sam build`` cannot build (it would fail with a traceback instead)."""
    defaults = (template.get("Globals") or {}).get("Function") or {}
    missing = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        properties = {**defaults, **(resource.get("Properties") or {})}
        if resource.get("Type") != "AWS::Serverless::Function" or properties.get("PackageType") == "Image":
            continue
        missing += [f"{logical_id} has no {name}" for name in ("Runtime", "CodeUri") if name not in properties]
    if missing:
        raise ArtifactBuildError("sam build needs every function's Runtime and CodeUri: " + "; ".join(missing))


# ---------------------------------------------------------------------- reading a build
def read_build(build_dir: Path, runtime: str, architecture: str, seconds: float, reused: bool) -> BuiltArtifacts:
    """Map each function of SAM's built template to its artifact and its layers' folders."""
    with open(build_dir / "template.yaml", encoding="utf-8") as handle:
        built = yaml.safe_load(handle)
    resources: dict[str, Any] = built.get("Resources") or {}
    global_layers = ((built.get("Globals") or {}).get("Function") or {}).get("Layers") or []
    functions: dict[str, FunctionArtifact] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") not in _FUNCTION_TYPES:
            continue
        properties = resource.get("Properties") or {}
        code = properties.get("CodeUri", properties.get("Code"))
        if not isinstance(code, str) or properties.get("PackageType") == "Image":
            continue
        # SAM puts the Globals' layers before the function's own.
        layers = [*global_layers, *(properties.get("Layers") or [])]
        layer_dirs = tuple(_layer_dir(build_dir, resources, logical_id, layer) for layer in layers)
        functions[logical_id] = FunctionArtifact(code_dir=build_dir / code, layer_dirs=layer_dirs)
    return BuiltArtifacts(build_dir, runtime, architecture, functions, seconds, reused)


def _layer_dir(build_dir: Path, resources: Mapping[str, Any], function: str, layer: Any) -> Path:
    name = layer.get("Ref") if isinstance(layer, dict) else None
    resource = resources.get(name) if isinstance(name, str) else None
    if resource is None or resource.get("Type") not in _LAYER_TYPES:
        raise ArtifactBuildError(f"{function}: layer {layer!r} is not built from this template: it cannot run locally")
    properties = resource.get("Properties") or {}
    content = properties.get("ContentUri", properties.get("Content"))
    if not isinstance(content, str):
        raise ArtifactBuildError(f"{function}: layer {name} has no local content")
    return build_dir / content


# ---------------------------------------------------------------------- building
def _default_log(message: str) -> None:
    _log.info("%s", message)


def build_artifacts(
    template_path: Path,
    parameters: Mapping[str, str] = {},  # noqa: B006 - read only
    *,
    cache_root: Path | None = None,
    sam: Sequence[str] | None = None,
    log: Callable[[str], None] = _default_log,
) -> BuiltArtifacts:
    """``sam build`` of ``template_path`` for this machine (``PythonRuntime`` and ``Architecture`` are
    always the machine's: the local stack runs the functions on this interpreter), reused when unchanged."""
    template_path = Path(template_path).resolve()
    runtime, architecture = machine_runtime()
    command = list(sam) if sam is not None else sam_command()
    template = load_template(template_path)
    overrides = {**build_parameters(template, parameters), "PythonRuntime": runtime, "Architecture": architecture}
    root = (cache_root or default_cache_root(template_path)).resolve()
    check_buildable(template)
    key = cache_key(template_path, overrides, runtime, architecture, command)
    final = root / "builds" / key
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        if (final / _COMPLETE).exists():
            os.utime(final)
            log(f"reusing the Lambda artifacts built earlier for {runtime}/{architecture}: {final}")
            return read_build(final, runtime, architecture, 0.0, True)
        started = time.monotonic()
        (root / "tmp").mkdir(exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=root / "tmp"))
        # sam keeps its build graph (which dependencies it installed, from which manifest) beside the build
        # folder; carried from build to build, it lets --cached skip pip when requirements are unchanged. A
        # changed local package would be skipped too (its requirements.txt line is the same): not carried then.
        graph = root / "build.toml"
        packages = root / "build.toml.packages"
        packages_digest = _local_packages_digest(template_path, source_folders(template, template_path.parent))
        try:
            if graph.exists() and packages.exists() and packages.read_text() == packages_digest:
                shutil.copy2(graph, scratch / "build.toml")
            _run_sam(command, template_path, scratch / "build", overrides, root,
                     cwd=_project_view(template_path.parent, root))
            shutil.copy2(scratch / "build.toml", graph)
            packages.write_text(packages_digest)
            (scratch / "build" / _COMPLETE).write_text(key)
            final.parent.mkdir(exist_ok=True)
            if final.exists():  # an incomplete leftover of a crashed build
                shutil.rmtree(final)
            os.rename(scratch / "build", final)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        seconds = time.monotonic() - started
        _prune(final.parent, keep=final)
    log(f"sam build of {template_path.name} for {runtime}/{architecture} took {seconds:.1f} s: {final}")
    return read_build(final, runtime, architecture, seconds, False)


def _project_view(project: Path, root: Path) -> Path:
    """``root/project``: a symlink to each entry of ``project`` but ``.aws-sam``, for sam build to run in. Paths
    relative to the project resolve as in the project, while sam's ``.aws-sam/deps`` is the view's own."""
    view = root / "project"
    view.mkdir(exist_ok=True)
    entries = {path.name: path for path in project.iterdir() if path.name != ".aws-sam"}
    for link in view.iterdir():
        if link.is_symlink() and (link.name not in entries or os.readlink(link) != str(entries[link.name])):
            link.unlink()
    for name, path in entries.items():
        link = view / name
        if not link.is_symlink() and not link.exists():
            link.symlink_to(path)
    return view


def _run_sam(command: Sequence[str], template: Path, build_dir: Path, overrides: Mapping[str, str], root: Path,
             *, cwd: Path) -> None:
    arguments = [
        *command, "build",
        "--template", str(template),
        "--build-dir", str(build_dir),
        # Keeps pip's downloads: an unchanged requirements file is not installed again.
        "--cached", "--cache-dir", str(root / "sam-cache"),
        "--parameter-overrides", *(f"{name}={_quoted(value)}" for name, value in overrides.items()),
    ]
    environment = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    try:
        # cwd: pip resolves relative paths in requirements.txt against it, and sam --cached keeps its
        # dependency folders in ./.aws-sam
        result = subprocess.run(arguments, cwd=cwd, env=environment, capture_output=True, text=True, check=False)
    except OSError as error:
        raise ArtifactBuildError(f"cannot run {command[0]}: {error}") from error
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-_OUTPUT_TAIL_LINES:])
        raise ArtifactBuildError(f"sam build failed (exit {result.returncode}) for {template}:\n{tail}")


def _quoted(value: str) -> str:
    """A value as sam's --parameter-overrides reads it: quoted when it holds spaces or quotes."""
    if not any(character in value for character in ' "\'\\'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` while inside the ``with`` block."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prune(builds: Path, keep: Path) -> None:
    done = sorted((path for path in builds.iterdir() if path != keep), key=lambda path: path.stat().st_mtime)
    for old in done[: max(0, len(done) - (KEEP_BUILDS - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def main() -> None:
    """``python -m taskcast.local.artifacts``: build (or reuse) template.yaml's artifacts and the
    Lambda-runtime interpreter for this machine, as ``taskcast local`` and the tests will use them."""
    from taskcast.local.runtime_env import lambda_runtime_python  # imports this module

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        built = build_artifacts(PROJECT_ROOT / "template.yaml")
        started = time.monotonic()
        python = lambda_runtime_python()
    except RuntimeError as error:  # ArtifactBuildError and RuntimeEnvError
        raise SystemExit(f"taskcast artifacts: {error}") from error
    print(f"{len(built.functions)} functions in {built.build_dir}")
    print(f"Lambda runtime interpreter: {python} ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
