"""The template's functions, with Lambda's contract.

Each ``AWS::Serverless::Function`` (or ``AWS::Lambda::Function`` with a ``Handler``) becomes a
``LocalFunction``: its ``Handler`` string, its environment (``Globals`` + its own ``Environment``,
resolved), timeout, memory and reserved concurrency. How it runs is its ``runner``:

- ``EnvironmentPool`` (``environments.py``, the default of ``taskcast local``): execution environments
  as processes started from the function's built artifact by AWS's runtime interface client, driven
  through the Runtime API, each with only its own function's environment;
- ``InProcessRunner`` (``taskcast local --from-source``): the handler imported from the source tree into
  the stack's own process and run on a thread. Quicker to start, but every function shares one process
  (their environments are merged into ``os.environ``) and a timed-out thread cannot be killed, only
  abandoned. Either way the event and the answer go through JSON, as on Lambda.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskcast.local.invocations import Invocation, exception_error, throttled_error, timeout_error
from taskcast.local.resolve import TemplateResolver

__all__ = ["FunctionRegistry", "InProcessRunner", "Invocation", "LocalFunction", "exception_error",
           "function_specs", "merged_environment", "throttled_error", "timeout_error"]

log = logging.getLogger("taskcast.local")

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
DEFAULT_TIMEOUT_S = 3
DEFAULT_MEMORY_MB = 128


class LambdaContext:
    """What Lambda passes as ``context`` (in-process runs): the attributes Powertools and handlers read."""

    def __init__(self, function: LocalFunction, request_id: str, deadline: float) -> None:
        self.aws_request_id = request_id
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = str(function.memory_mb)
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"local/[$LATEST]{request_id.replace('-', '')}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionRunner(Protocol):
    def invoke(self, event: Any, *, request_id: str | None = None, wait_s: float | None = None) -> Invocation: ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class LocalFunction:
    logical_id: str
    name: str
    arn: str
    handler_path: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    environment: dict[str, str] = field(default_factory=dict)
    event_invoke_config: dict[str, Any] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    runner: FunctionRunner | None = field(default=None, repr=False)
    _handler: Callable[[Any, Any], Any] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def handler(self) -> Callable[[Any, Any], Any]:
        """The handler callable imported from the Python path (in-process runs), on first use."""
        with self._lock:
            if self._handler is None:
                module_name, _, attribute = self.handler_path.rpartition(".")
                if not module_name:
                    raise ImportError(f"handler {self.handler_path!r} is not <module>.<function>")
                module = importlib.import_module(module_name)
                self._handler = getattr(module, attribute)
            return self._handler

    def invoke(self, event: Any, *, request_id: str | None = None, wait_s: float | None = None) -> Invocation:
        """Run the function on ``event``; the caller waits at most ``wait_s`` (default: the function's timeout)."""
        if self.reserved_concurrency == 0:
            request_id = request_id or str(uuid.uuid4())
            return Invocation(request_id, error=throttled_error(request_id))
        if self.runner is None:
            self.runner = InProcessRunner(self)
        return self.runner.invoke(event, request_id=request_id, wait_s=wait_s)


class InProcessRunner:
    """Runs a function's handler on a thread of the stack's own process (``--from-source``)."""

    def __init__(self, function: LocalFunction) -> None:
        self.function = function

    def close(self) -> None:
        """Threads cannot be stopped; a running one ends on its own."""

    def describe(self) -> dict[str, Any]:
        return {"runner": "in-process"}

    def invoke(self, event: Any, *, request_id: str | None = None, wait_s: float | None = None) -> Invocation:
        function = self.function
        request_id = request_id or str(uuid.uuid4())
        limit = function.timeout_s if wait_s is None else min(wait_s, function.timeout_s)
        context = LambdaContext(function, request_id, time.monotonic() + function.timeout_s)
        event_copy = json.loads(json.dumps(event))
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def run() -> None:
            try:
                payload = function.handler()(event_copy, context)
                outcome["payload"] = json.loads(json.dumps(payload))
            except BaseException as error:  # noqa: BLE001 - every failure becomes Lambda's error object
                outcome["error"] = exception_error(request_id, error)
                log.error(
                    "%s request %s failed: %s", function.name, request_id, "".join(traceback.format_exception(error))
                )
            finally:
                finished.set()

        threading.Thread(target=run, name=f"{function.name}:{request_id[:8]}", daemon=True).start()
        if not finished.wait(limit):
            if limit < function.timeout_s:
                return Invocation(request_id, error={"errorType": "Gateway.Timeout",
                                                     "errorMessage": f"stopped waiting after {limit:.2f} s"},
                                  cut=True)
            log.error("%s request %s timed out after %.2f s (its thread is abandoned)", function.name, request_id,
                      limit)
            return Invocation(request_id, error=timeout_error(request_id, limit), timed_out=True)
        if "error" in outcome:
            return Invocation(request_id, error=outcome["error"])
        return Invocation(request_id, payload=outcome.get("payload"))


def function_specs(resolver: TemplateResolver) -> list[LocalFunction]:
    """Every function of the template, with Globals applied and intrinsics resolved."""
    template = resolver.template
    global_properties = resolver.resolve(((template.get("Globals") or {}).get("Function")) or {})
    functions = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") not in FUNCTION_TYPES or not resolver.resource_enabled(logical_id):
            continue
        properties = resolver.properties(logical_id)
        if "Handler" not in properties and "Handler" not in global_properties:
            continue  # an image or inline function the local stack cannot run
        environment = {
            **((global_properties.get("Environment") or {}).get("Variables") or {}),
            **((properties.get("Environment") or {}).get("Variables") or {}),
        }
        functions.append(
            LocalFunction(
                logical_id=logical_id,
                name=resolver.physical_name(logical_id),
                arn=resolver.arn(logical_id),
                handler_path=properties.get("Handler") or global_properties["Handler"],
                timeout_s=float(properties.get("Timeout", global_properties.get("Timeout", DEFAULT_TIMEOUT_S))),
                memory_mb=int(properties.get("MemorySize", global_properties.get("MemorySize", DEFAULT_MEMORY_MB))),
                environment={key: _env_value(value) for key, value in environment.items()},
                event_invoke_config=properties.get("EventInvokeConfig") or {},
                events=properties.get("Events") or {},
                reserved_concurrency=_optional_int(properties.get("ReservedConcurrentExecutions")),
            )
        )
    return functions


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def merged_environment(functions: list[LocalFunction]) -> tuple[dict[str, str], list[str]]:
    """One environment for all functions, and the variables two functions set to different values."""
    merged: dict[str, str] = {}
    conflicts: list[str] = []
    for function in functions:
        for key, value in function.environment.items():
            if key in merged and merged[key] != value and key not in conflicts:
                conflicts.append(key)
            merged.setdefault(key, value)
    return merged, conflicts


class FunctionRegistry:
    """Functions by logical id, name and ARN (qualified ARNs and ``$LATEST`` too)."""

    def __init__(self, functions: list[LocalFunction]) -> None:
        self._by_logical_id = {function.logical_id: function for function in functions}
        self._by_name = {function.name: function for function in functions}

    def __iter__(self) -> Iterator[LocalFunction]:
        return iter(self._by_logical_id.values())

    def __len__(self) -> int:
        return len(self._by_logical_id)

    def by_logical_id(self, logical_id: str) -> LocalFunction | None:
        return self._by_logical_id.get(logical_id)

    def find(self, name_or_arn: str) -> LocalFunction | None:
        """``name``, ``name:$LATEST``, ``arn:aws:lambda:…:function:name[:qualifier]``."""
        name = name_or_arn
        if name.startswith("arn:"):
            parts = name.split(":")
            name = parts[6] if len(parts) > 6 else ""
        else:
            name = name.split(":")[0]
        return self._by_name.get(name)

    def function_for_arn_reference(self, uri: str) -> LocalFunction | None:
        """API Gateway's ``arn:…:apigateway:…:lambda:path/2015-03-31/functions/<function arn>/invocations``."""
        if "/functions/" in uri:
            uri = uri.split("/functions/", 1)[1].removesuffix("/invocations")
        return self.find(uri)

    def describe(self) -> Mapping[str, dict[str, Any]]:
        return {
            function.logical_id: {"name": function.name, "arn": function.arn, "handler": function.handler_path}
            for function in self
        }
