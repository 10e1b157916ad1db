"""`sam build` packages a user's jobs: a project whose `deploy/jobs/requirements.txt` names the example package
(examples/report_jobs, by a path relative to the project, as docs/jobs.md says) gets it in JobsLayer with its
`taskcast.jobs` entry point, and the built REST and worker functions use it with no `JobModules`.

One more real `sam build` (of template.yaml, unchanged, in a project folder beside the local builds so that
an unchanged one is reused); the handlers run from their artifacts with the Lambda runtime interpreter, as
in test_sam_artifacts.py. The REST function's Lambda calls go to a recorder standing in for Lambda. Last, the
local stack runs the same project (reusing that build): the job with no PYTHONPATH and no JobModules.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from taskcast.local.artifacts import BUILD_DIR_ENV, BuiltArtifacts, build_artifacts, default_cache_root
from taskcast.local.resolve import TemplateResolver
from taskcast.local.resources import create_resources
from taskcast.local.services import MotoService, aws_environment
from taskcast.local.template import load_template
from taskcast.local.testing import running_stack
from tests.conftest import TENANTS
from tests.deploy.test_sam_artifacts import TEMPLATE, _boto_credentials, _event, function_environment, run_handler
from tests.e2e.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
CACHE = default_cache_root(TEMPLATE) / "user-jobs"
PROJECT = CACHE / "source"
# What docs/jobs.md tells a user to write, the package's path relative to the project.
REQUIREMENTS = "-c ../dependencies/requirements.txt\n./examples/report_jobs\n"
REPORT = {"title": "Q3", "sections": [[1, 2], [3]]}

pytestmark = pytest.mark.timeout(600)  # a cold `sam build` of the whole template


def _user_project() -> Path:
    """A deployment project: taskcast's template and code, and the example package named in its jobs layer."""
    if PROJECT.exists():
        shutil.rmtree(PROJECT)
    (PROJECT / "deploy" / "jobs").mkdir(parents=True)
    shutil.copy2(TEMPLATE, PROJECT / "template.yaml")
    for folder in ("functions", "dependencies"):
        (PROJECT / "deploy" / folder).symlink_to(ROOT / "deploy" / folder)
    (PROJECT / "deploy" / "jobs" / "requirements.txt").write_text(REQUIREMENTS)
    shutil.copytree(ROOT / "examples" / "report_jobs", PROJECT / "examples" / "report_jobs",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".pytest_cache", "tests"))
    return PROJECT / "template.yaml"


@pytest.fixture(scope="module")
def built() -> BuiltArtifacts:
    return build_artifacts(_user_project(), cache_root=CACHE, log=print)


class LambdaRecorder(ThreadingHTTPServer):
    """Stands in for Lambda's Invoke API: accepts every asynchronous invoke and keeps its payload."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.payloads: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RecordingHandler(BaseHTTPRequestHandler):
    server: LambdaRecorder

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.payloads.append(json.loads(body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass


@pytest.fixture(scope="module")
def lambda_api() -> Iterator[LambdaRecorder]:
    server = LambdaRecorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def resolver(moto: MotoService) -> TemplateResolver:
    resolver = TemplateResolver(load_template(TEMPLATE))
    clients = {
        service: boto3.client(service, endpoint_url=moto.url, region_name="us-east-1", **_boto_credentials())
        for service in ("dynamodb", "sqs", "s3")
    }
    create_resources(resolver, clients["dynamodb"], clients["sqs"], clients["s3"])
    return resolver


def _environment(resolver: TemplateResolver, logical_id: str, moto: MotoService,
                 lambda_api: LambdaRecorder) -> dict[str, str]:
    # No JobModules: the entry point of the installed package names the module.
    environment = function_environment(resolver, logical_id, moto.url)
    assert environment.get("TASKCAST_JOB_MODULES", "") == ""
    return {**environment, **aws_environment(moto.url, lambda_url=lambda_api.url)}


def _rest(method: str, path: str, body: Any = None) -> dict[str, Any]:
    event = _event("rest-proxy-v1")
    event.update(httpMethod=method, path=path, resource=path, pathParameters=None, queryStringParameters=None,
                 multiValueQueryStringParameters=None, body=None if body is None else json.dumps(body))
    event["headers"] = {"Content-Type": "application/json"}
    event["multiValueHeaders"] = {"Content-Type": ["application/json"]}
    event["requestContext"]["authorizer"] = {"tenant": "acme"}
    return event


def _versions(layer: Path) -> dict[str, str]:
    """distribution name → version, from the layer's *.dist-info folders."""
    versions: dict[str, str] = {}
    for path in (layer / "python").glob("*.dist-info"):
        name, _, version = path.name.removesuffix(".dist-info").rpartition("-")
        versions[name] = version
    return versions


def test_the_jobs_layer_holds_the_package_and_its_entry_point(built: BuiltArtifacts) -> None:
    for logical_id in ("RestFunction", "WorkerFunction"):
        dependencies, jobs = built.functions[logical_id].layer_dirs
        assert jobs.name == "JobsLayer"
    python = jobs / "python"
    assert (python / "report_jobs" / "render.py").is_file()
    entry_points = (python / "report_jobs-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "[taskcast.jobs]" in entry_points and "report_jobs.render" in entry_points
    # The constraints line keeps what the package shares with taskcast (pydantic) at the dependencies layer's
    # versions: where the two layers overlap, they hold the same files.
    shared = _versions(jobs).keys() & _versions(dependencies).keys()
    assert "pydantic" in shared
    assert {name: _versions(jobs)[name] for name in shared} == {name: _versions(dependencies)[name] for name in shared}
    assert "JobsLayer" not in {layer.name for layer in built.functions["StreamConsumerFunction"].layer_dirs}


def test_rest_and_worker_run_the_users_job_from_their_artifacts(
    built: BuiltArtifacts, runtime_python: Path, moto: MotoService, lambda_api: LambdaRecorder,
    resolver: TemplateResolver, tmp_path: Path,
) -> None:
    rest_environment = _environment(resolver, "RestFunction", moto, lambda_api)

    def rest(event: dict[str, Any], name: str) -> dict[str, Any]:
        folder = tmp_path / name
        folder.mkdir()
        answer = run_handler(built, runtime_python, "RestFunction", event, rest_environment, folder)
        assert "errorType" not in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    refused = rest(_rest("POST", "/tasks", {"type": "render-report", "input": {"title": "Q3"}}), "refused")
    assert refused["statusCode"] == 400, refused
    assert "sections" in refused["body"]

    created = rest(_rest("POST", "/tasks", {"type": "render-report", "input": REPORT}), "created")
    assert created["statusCode"] == 202, created
    task_id = json.loads(created["body"])["id"]
    assert lambda_api.payloads == [{"task_id": task_id}]

    worker = tmp_path / "worker"
    worker.mkdir()
    ran = run_handler(built, runtime_python, "WorkerFunction", {"task_id": task_id},
                      _environment(resolver, "WorkerFunction", moto, lambda_api), worker)
    assert ran.get("result", {}).get("task_id") == task_id, ran

    task = json.loads(rest(_rest("GET", f"/tasks/{task_id}"), "read")["body"])
    assert task["status"] == "SUCCEEDED", task
    result = json.loads(rest(_rest("GET", f"/tasks/{task_id}/result"), "result")["body"])
    assert result == {"title": "Q3", "totals": [3, 3], "total": 6}


def test_the_openapi_description_lists_the_users_job(built: BuiltArtifacts, runtime_python: Path,
                                                     moto: MotoService, lambda_api: LambdaRecorder,
                                                     resolver: TemplateResolver, tmp_path: Path) -> None:
    answer = run_handler(built, runtime_python, "RestFunction", _rest("GET", "/openapi.json"),
                         _environment(resolver, "RestFunction", moto, lambda_api), tmp_path)
    document = json.loads(answer["result"]["body"])
    schema = {"$ref": "#/components/schemas/JobInput.ReportInput"}
    assert document["x-taskcast-jobs"]["render-report"]["input"] == schema


def test_the_local_stack_runs_the_users_job_from_the_same_project(built: BuiltArtifacts) -> None:
    with running_stack(template=PROJECT / "template.yaml", tenants=TENANTS,
                       environment={BUILD_DIR_ENV: str(CACHE)}) as stack:
        api = Api(stack, TENANTS["acme"]["api_key"])
        refused = api.session.post(f"{api.base}/tasks", json={"type": "render-report", "input": {"title": "Q3"}},
                                   timeout=30)
        assert refused.status_code == 400, refused.text
        task = api.create("render-report", REPORT)
        assert api.wait_terminal(task["id"])["status"] == "SUCCEEDED"
        assert api.get(f"/tasks/{task['id']}/result").json() == {"title": "Q3", "totals": [3, 3], "total": 6}
        assert stack.log_path is not None and "reusing the Lambda artifacts" in stack.log_path.read_text()
