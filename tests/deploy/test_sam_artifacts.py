"""What `sam build` makes of template.yaml is deployable: every function's artifact holds only Lambda
code, imports its handler with nothing but the artifact, its layers and the Lambda runtime's own
libraries on the path, and answers a recorded event of its kind (against moto).

The build is the real one (aws-sam-cli from .venv-sam, `make sam`) for this machine's Python and CPU,
into a temporary folder; the Lambda-runtime interpreter is `make artifacts`'s (created here if missing).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from taskcast.local.artifacts import BuiltArtifacts, build_artifacts
from taskcast.local.resolve import TemplateResolver
from taskcast.local.resources import create_resources
from taskcast.local.services import FAKE_CREDENTIALS, MotoService, aws_environment
from taskcast.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "tests" / "fixtures" / "events"
FUNCTIONS = sorted(
    logical_id for logical_id, resource in load_template(TEMPLATE)["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
)
NOT_LAMBDA_CODE = {"tests", "bench", "docs", "client_demo", "taskcast_client", ".venv", ".git", "deploy"}
API_KEY = "tc_artifact_test_key"
TENANTS = {"acme": {"api_key": API_KEY, "webhook_secret": "whsec_" + base64.b64encode(b"k" * 32).decode()}}
INVOKE_TIMEOUT_S = 60
JOBS_LAYER_FUNCTIONS = {"RestFunction", "WorkerFunction", "LargeWorkerFunction"}

pytestmark = pytest.mark.timeout(600)  # the first test pays for a cold `sam build` (about 15-30 s here)

# Runs one handler the way Lambda's runtime would: import <module>.<function>, call it with the event
# and a context. Writes {"result": ...} or {"errorType", "errorMessage"} to argv[3]; with event "-" it
# only imports, and records where the key packages came from.
HARNESS = r"""
import importlib, importlib.util, json, sys, time
handler_path, event_path, out_path = sys.argv[1:4]

class Context:
    function_name = "artifact-test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:artifact-test"
    memory_limit_in_mb = "512"
    aws_request_id = "5f8e3c1a-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/artifact-test"
    log_stream_name = "artifact-test"
    identity = None
    client_context = None
    def __init__(self):
        self.deadline = time.monotonic() + 30
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)

module_name, _, attribute = handler_path.rpartition(".")
handler = getattr(importlib.import_module(module_name), attribute)
if event_path == "-":
    origins = {name: (importlib.util.find_spec(name) or None) and importlib.util.find_spec(name).origin
               for name in ("taskcast", "pydantic_core", "boto3", "moto", "yaml", "pytest")}
    answer = {"origins": origins}
else:
    with open(event_path) as handle:
        event = json.load(handle)
    try:
        answer = {"result": handler(event, Context())}
    except Exception as error:
        answer = {"errorType": type(error).__name__, "errorMessage": str(error)}
with open(out_path, "w") as handle:
    json.dump(answer, handle, default=str)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltArtifacts:
    return build_artifacts(TEMPLATE, cache_root=tmp_path_factory.mktemp("sam-build"), log=print)


@pytest.fixture(scope="module")
def resolver(moto: MotoService) -> TemplateResolver:
    """The template's tables, queues and bucket created in moto, and the resolver that names them."""
    resolver = TemplateResolver(load_template(TEMPLATE))
    clients = {
        service: boto3.client(service, endpoint_url=moto.url, region_name="us-east-1", **_boto_credentials())
        for service in ("dynamodb", "sqs", "s3")
    }
    create_resources(resolver, clients["dynamodb"], clients["sqs"], clients["s3"])
    return resolver


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
    }


def function_environment(resolver: TemplateResolver, logical_id: str, moto_url: str) -> dict[str, str]:
    """What Lambda would set: Globals + the function's variables (resolved locally), AWS pointed at moto,
    and nothing from this test process (no project venv, no PYTHONPATH of ours)."""
    template = resolver.template
    variables = {
        **(((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables", {}),
        **((resolver.properties(logical_id).get("Environment") or {}).get("Variables") or {}),
    }
    resolved = {name: str(resolver.resolve(value)) for name, value in variables.items()}
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **resolved,
        **aws_environment(moto_url),
        "TASKCAST_TENANTS": json.dumps(TENANTS),
        "AWS_LAMBDA_FUNCTION_NAME": logical_id,
    }


def run_handler(built: BuiltArtifacts, runtime_python: Path, logical_id: str, event: Any,
                environment: Mapping[str, str], tmp_path: Path) -> dict[str, Any]:
    artifact = built.functions[logical_id]
    handler = load_template(built.build_dir / "template.yaml")["Resources"][logical_id]["Properties"]["Handler"]
    # Lambda's order: the function's code, then its layers' python/ folders, then the runtime's libraries.
    path = [str(artifact.code_dir), *(str(layer / "python") for layer in artifact.layer_dirs)]
    event_path = "-"
    if event is not None:
        event_path = str(tmp_path / "event.json")
        Path(event_path).write_text(json.dumps(event))
    out_path = tmp_path / "answer.json"
    result = subprocess.run(
        [str(runtime_python), "-s", "-c", HARNESS, handler, event_path, str(out_path)],
        cwd=artifact.code_dir,
        env={**environment, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True, text=True, timeout=INVOKE_TIMEOUT_S, check=False,
    )
    if result.returncode != 0 or not out_path.exists():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        pytest.fail(f"{logical_id} ({handler}) failed in its artifact:\n{tail}")
    return json.loads(out_path.read_text())


# ---------------------------------------------------------------------- contents
def test_every_function_of_the_template_is_built(built: BuiltArtifacts) -> None:
    assert sorted(built.functions) == FUNCTIONS
    for artifact in built.functions.values():
        assert artifact.layer_dirs, "every function gets the dependencies layer"


def test_artifacts_hold_lambda_code_and_dependencies_only(built: BuiltArtifacts) -> None:
    folders = {artifact.code_dir for artifact in built.functions.values()}
    folders |= {layer / "python" for artifact in built.functions.values() for layer in artifact.layer_dirs}
    strays = {f"{folder.name}/{name}" for folder in folders for name in os.listdir(folder) if name in NOT_LAMBDA_CODE}
    assert not strays, f"not Lambda code: {sorted(strays)}"
    for logical_id, artifact in built.functions.items():
        assert {"taskcast", "handlers", "streams"} <= set(os.listdir(artifact.code_dir))
        dependencies, *others = artifact.layer_dirs
        layer_packages = set(os.listdir(dependencies / "python"))
        assert {"pydantic", "aws_lambda_powertools", "standardwebhooks", "requests_hardened"} <= layer_packages
        assert not {"boto3", "botocore"} & layer_packages, "the Lambda runtime provides boto3"
        # The jobs layer, for the two functions that use the job registry; with no user jobs it holds only its
        # requirements.txt (a layer is never an empty zip).
        assert [layer.name for layer in others] == (["JobsLayer"] if logical_id in JOBS_LAYER_FUNCTIONS else [])
        for layer in others:
            assert os.listdir(layer / "python") == ["requirements.txt"]


# ---------------------------------------------------------------------- imports
@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_handler_imports_from_its_artifact_alone(built: BuiltArtifacts, runtime_python: Path, logical_id: str,
                                                 tmp_path: Path) -> None:
    environment = function_environment(TemplateResolver(load_template(TEMPLATE)), logical_id, "http://127.0.0.1:9")
    origins = run_handler(built, runtime_python, logical_id, None, environment, tmp_path)["origins"]
    artifact = built.functions[logical_id]
    assert origins["taskcast"].startswith(str(artifact.code_dir)), origins
    assert origins["pydantic_core"].startswith(str(artifact.layer_dirs[0])), origins
    assert origins["boto3"].startswith(str(runtime_python.parents[1])), origins
    assert origins["moto"] is None and origins["yaml"] is None and origins["pytest"] is None, origins


# ---------------------------------------------------------------------- one invocation each
def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def _rest_openapi() -> dict[str, Any]:
    event = _event("rest-proxy-v1")
    event.update(httpMethod="GET", path="/openapi.json", resource="/openapi.json", body=None, pathParameters=None)
    return event


def _rest_authorizer() -> dict[str, Any]:
    event = _event("rest-authorizer-request")
    event["headers"]["Authorization"] = f"Bearer {API_KEY}"
    event["multiValueHeaders"]["Authorization"] = [f"Bearer {API_KEY}"]
    return event


def _websocket_authorizer() -> dict[str, Any]:
    event = _event("websocket-authorizer-connect")
    event["queryStringParameters"] = {"token": API_KEY}
    event["multiValueQueryStringParameters"] = {"token": [API_KEY]}
    return event


def _allows(answer: dict[str, Any]) -> bool:
    statements = answer["result"]["policyDocument"]["Statement"]
    return [statement["Effect"] for statement in statements] == ["Allow"]


def _batch_failures(answer: dict[str, Any]) -> bool:
    return isinstance(answer["result"]["batchItemFailures"], list)


CASES: dict[str, tuple[Callable[[], Any], Callable[[dict[str, Any]], bool]]] = {
    "RestAuthorizerFunction": (_rest_authorizer, _allows),
    "RestFunction": (_rest_openapi, lambda answer: answer["result"]["statusCode"] == 200),
    "WorkerFunction": (lambda: {"task_id": "no-such-task"}, lambda answer: answer["result"]["status"] is None),
    "LargeWorkerFunction": (lambda: {"task_id": "no-such-task"}, lambda answer: answer["result"]["status"] is None),
    "WorkerFailureFunction": (lambda: _event("sqs"), _batch_failures),
    "UploadArrivedFunction": (lambda: _event("sqs"), _batch_failures),
    "WebSocketAuthorizerFunction": (_websocket_authorizer, _allows),
    "WebSocketFunction": (lambda: _event("websocket-disconnect"), lambda answer: answer["result"]["statusCode"] == 200),
    "StreamConsumerFunction": (lambda: _event("dynamodb-stream"), _batch_failures),
    "WebhookRetryFunction": (lambda: _event("sqs"), _batch_failures),
}


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_function_answers_a_recorded_event(built: BuiltArtifacts, runtime_python: Path, moto: MotoService,
                                           resolver: TemplateResolver, logical_id: str, tmp_path: Path) -> None:
    assert logical_id in CASES, f"{logical_id}: add a recorded event and the answer it must give to CASES"
    make_event, expected = CASES[logical_id]
    answer = run_handler(built, runtime_python, logical_id, make_event(),
                         function_environment(resolver, logical_id, moto.url), tmp_path)
    assert "errorType" not in answer, f"{logical_id} raised: {answer}"
    assert expected(answer), f"{logical_id} answered {answer}"
