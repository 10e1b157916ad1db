"""Drives the REST handler and the worker the way API Gateway and Lambda do, in one process.

Requests are API Gateway REST proxy (v1) events built from the recorded fixture; the worker is started
by an injected invoker that runs ``handlers.worker.lambda_handler`` in a thread, as Lambda's async
invocation would. Test jobs (``gate``) block on events so that tests observe each state on purpose.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers import rest, worker
from taskcast.api.deps import ApiDeps
from taskcast.jobs import JobContext, JobRegistry, default_registry
from taskcast.settings import Settings
from taskcast.store import TaskStore
from taskcast.worker_runtime import WorkerDeps
from tests.functional.serial_client import serialized_dynamodb

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
WAIT_S = 10.0


class FakeLambdaContext:
    """The attributes of Lambda's context object that taskcast and Powertools read."""

    def __init__(self, function_name: str = "taskcast-test", remaining_ms: int = 60_000) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "test"
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


def load_event(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def resource_of(path: str) -> str:
    """The template's resource path for a request path (what API Gateway puts in ``resource``)."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "tasks":
        parts[2] = "{id}"
    return "/".join(parts)


def proxy_event(
    method: str,
    path: str,
    *,
    tenant: str | None = "acme",
    body: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    event = copy.deepcopy(load_event("rest-proxy-v1.json"))
    all_headers = {"Accept": "application/json", "Authorization": "Bearer (checked by the authorizer)"}
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    resource = resource_of(path)
    event.update(
        httpMethod=method,
        path=path,
        resource=resource,
        headers=all_headers,
        multiValueHeaders={key: [value] for key, value in all_headers.items()},
        queryStringParameters=query or None,
        multiValueQueryStringParameters={key: [value] for key, value in query.items()} if query else None,
        pathParameters={"id": path.split("/")[2]} if "{id}" in resource else None,
        body=body,
        isBase64Encoded=False,
    )
    context = event["requestContext"]
    context.update(httpMethod=method, path=f"/prod{path}", resourcePath=resource, stage="prod")
    # What API Gateway passes on from the authorizer's answer: principalId plus its context keys.
    context["authorizer"] = {"principalId": tenant, "tenant": tenant, "integrationLatency": 0} if tenant else {}
    return event


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @classmethod
    def from_proxy(cls, answer: dict[str, Any]) -> Reply:
        headers: dict[str, str] = {}
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            headers[name.lower()] = ", ".join(values)
        for name, value in (answer.get("headers") or {}).items():
            headers[name.lower()] = value
        return cls(status=answer["statusCode"], headers=headers, text=answer.get("body") or "")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Gate:
    """A test job's handles: set ``release`` to let it finish; ``reported`` is set after its progress report."""

    reported: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)
    calls: int = 0


def harness_registry(gates: dict[str, Gate]) -> JobRegistry:
    registry = default_registry.copy()

    @registry.job("gate")
    def gate(job_input: Any, ctx: JobContext) -> Any:
        handle = gates.setdefault(job_input["name"], Gate())
        handle.calls += 1
        try:
            ctx.progress(50, message="half way")
            handle.reported.set()
            if not handle.release.wait(WAIT_S):
                raise TimeoutError("the test never released the gate")
            if job_input.get("report_again"):
                ctx.progress(75)
            return {"gate": job_input["name"], "ok": True}
        finally:
            handle.stopped.set()

    @registry.job("crash")
    def crash(job_input: Any, ctx: JobContext) -> Any:
        raise ValueError("division by zero, on purpose")

    @registry.job("big")
    def big(job_input: Any, ctx: JobContext) -> Any:
        return "x" * int(job_input["bytes"])

    return registry


class RestHarness:
    def __init__(self, settings: Settings, *, start_workers: bool = True) -> None:
        self.settings = settings
        self.gates: dict[str, Gate] = {}
        self.registry = harness_registry(self.gates)
        self.dynamodb = serialized_dynamodb()
        self.store = TaskStore(settings.tasks_table, self.dynamodb, retention_s=settings.retention_s)
        self.worker_deps = WorkerDeps(
            store=TaskStore(settings.tasks_table, self.dynamodb, retention_s=settings.retention_s),
            registry=self.registry,
            inline_limit_bytes=settings.inline_limit_bytes,
        )
        self.start_workers = start_workers
        self.invocations: list[str] = []
        self.worker_classes: dict[str, str] = {}  # task id -> the worker function class it was started on
        self.threads: list[threading.Thread] = []
        self.sleeps = 0
        self.hold_started = threading.Event()
        self.deps = ApiDeps.from_settings(
            settings, dynamodb=self.dynamodb, invoke_worker=self.invoke_worker, registry=self.registry
        )
        self.deps.sleep = self._counting_sleep

    def _counting_sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.hold_started.set()
        threading.Event().wait(seconds)

    def gate(self, name: str) -> Gate:
        return self.gates.setdefault(name, Gate())

    def invoke_worker(self, task_id: str, worker_class: str) -> None:
        """Lambda's async invoke: accepted at once, the worker runs on its own."""
        self.invocations.append(task_id)
        self.worker_classes[task_id] = worker_class
        if self.start_workers:
            self.run_worker_async(task_id)

    def run_worker_async(self, task_id: str) -> threading.Thread:
        thread = threading.Thread(
            target=worker.lambda_handler,
            args=({"task_id": task_id}, FakeLambdaContext("taskcast-worker")),
            kwargs={"deps": self.worker_deps},
            name=f"worker-{task_id[:8]}",
            daemon=True,
        )
        self.threads.append(thread)
        thread.start()
        return thread

    def join_workers(self, timeout: float = WAIT_S) -> None:
        for thread in self.threads:
            thread.join(timeout)
            assert not thread.is_alive(), f"worker thread {thread.name} did not finish"

    def request(
        self,
        method: str,
        path: str,
        *,
        tenant: str | None = "acme",
        json_body: Any = None,
        body: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Reply:
        if json_body is not None:
            body = json.dumps(json_body)
        event = proxy_event(method, path, tenant=tenant, body=body, headers=headers, query=query)
        return Reply.from_proxy(rest.lambda_handler(event, FakeLambdaContext("taskcast-rest"), deps=self.deps))

    def create(self, job_type: str, job_input: Any = None, **options: Any) -> Reply:
        return self.request("POST", "/tasks", json_body={"type": job_type, "input": job_input}, **options)

    def create_gate(self, name: str, **options: Any) -> tuple[str, Gate]:
        gate = self.gate(name)
        reply = self.create("gate", {"name": name, **options.pop("extra_input", {})}, **options)
        assert reply.status == 202, reply.text
        return reply.json()["id"], gate

    def close(self) -> None:
        for gate in self.gates.values():
            gate.release.set()
        for thread in self.threads:
            thread.join(WAIT_S)

    def __enter__(self) -> RestHarness:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
