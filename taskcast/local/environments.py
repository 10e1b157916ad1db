"""Functions run as Lambda runs them: each execution environment is a process of its own, started
from the function's built artifact with only that function's environment, bootstrapped by AWS's
runtime interface client (``python -m awslambdaric <handler>``) and driven through the Runtime API
(``runtime_api.py``).

- An environment's init phase (importing the handler) ends at its first ``next``; an import error is
  an init error reported with the function's name, and the invocation fails with the runtime's error.
- An invocation that overruns the function's timeout ends with Lambda's ``Task timed out`` error and
  the process is killed; the next invocation gets a fresh environment (a cold start).
- ``ReservedConcurrentExecutions`` (else a local default) caps the environments of a function; an
  invocation that finds them all busy waits for one, as a throttled event source or queue would.
- Whatever the process prints is logged tagged with the function's name and the request id, with
  Lambda's ``START`` / ``END`` / ``REPORT`` lines around each invocation.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from taskcast.local.invocations import Invocation, timeout_error
from taskcast.local.runtime_api import Handover, RuntimeApi

if TYPE_CHECKING:
    from taskcast.local.functions import LocalFunction

log = logging.getLogger("taskcast.local")
function_log = logging.getLogger("taskcast.local.functions")

INIT_TIMEOUT_S = 10.0  # Lambda's init phase limit; a slower init is retried within the first invocation
DEFAULT_MAX_ENVIRONMENTS = 128  # per function; Lambda's default is 1,000 for the whole account
SCALE_OUT_AFTER_S = 0.1  # how long an invocation waits for a warm environment before a cold start
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Launch:
    """How a function's environments start: the runtime's interpreter, the artifact and its layers."""

    python: Path  # an interpreter with only what Lambda's runtime provides (boto3, awslambdaric)
    code_dir: Path  # LAMBDA_TASK_ROOT: the function's built code
    layer_dirs: tuple[Path, ...] = ()  # each layer's folder (its python/ goes on the path, as /opt/python)
    runtime: str = "python3.11"
    extra_python_path: tuple[str, ...] = ()  # after the layers (the local stack's instrumentation hook)


def python_path(launch: Launch) -> list[str]:
    """The import path Lambda's Python runtime gives a function: its code, then each layer's
    ``python/lib/pythonX.Y/site-packages`` and ``python``, then the runtime's own libraries."""
    version = launch.runtime.removeprefix("python")
    paths = [str(launch.code_dir)]
    for layer in launch.layer_dirs:
        paths += [str(layer / "python" / "lib" / f"python{version}" / "site-packages"), str(layer / "python")]
    return paths + list(launch.extra_python_path)


def process_environment(function: LocalFunction, launch: Launch, variables: Mapping[str, str],
                        runtime_api: str, region: str) -> dict[str, str]:
    """The whole environment of one function's process: the function's own variables and the ones the
    Lambda service sets (reserved names win, as on Lambda). Nothing of the stack's environment leaks in."""
    bin_dir = str(launch.python.parent)
    environment = {
        "PATH": os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        **variables,
        "_HANDLER": function.handler_path,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "LAMBDA_TASK_ROOT": str(launch.code_dir),
        "LAMBDA_RUNTIME_DIR": str(launch.python.parent.parent),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{launch.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "PYTHONPATH": os.pathsep.join(python_path(launch) + [p for p in [variables.get("PYTHONPATH", "")] if p]),
    }
    return environment


def _die_with_parent() -> None:
    """Runs in the child before exec: it gets SIGKILL when the stack's process dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _Spawner:
    """Starts every environment's process from one long-lived thread: the kernel's parent-death signal
    follows the thread that forked, so a process forked by a short-lived invoking thread would be
    killed when that thread ends."""

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]]
        self._requests = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def spawn(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="lambda-spawner", daemon=True)
                self._thread.start()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((start, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            start, future = self._requests.get()
            try:
                future.set_result(start())
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                future.set_exception(error)


_spawner = _Spawner()


_LEVEL_PREFIXES = {f"[{name}]": getattr(logging, name) for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}


def output_level(line: str) -> int:
    """The log level of a line a function printed: awslambdaric's ``[WARNING]\t...`` text lines and
    Powertools' JSON lines carry theirs; anything else (print) is INFO. So ``--log-level`` filters a
    function's output as it filters the stack's own."""
    head = line[:12]
    for prefix, level in _LEVEL_PREFIXES.items():
        if head.startswith(prefix):
            return level
    if line.startswith("{") and '"level"' in line:
        try:
            named = json.loads(line).get("level")
        except (ValueError, AttributeError):
            return logging.INFO
        if isinstance(named, str) and named.upper() in logging.getLevelNamesMapping():
            return logging.getLevelNamesMapping()[named.upper()]
    return logging.INFO


def exit_error(request_id: str, status: int | None) -> dict[str, Any]:
    return {"errorType": "Runtime.ExitError", "requestId": request_id,
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {status}"}


class ExecutionEnvironment:
    """One process of one function and its Runtime API."""

    def __init__(self, function: LocalFunction, launch: Launch, variables: Mapping[str, str], region: str,
                 index: int) -> None:
        self.function = function
        self.launch = launch
        self.variables = dict(variables)
        self.region = region
        self.index = index
        self.name = f"{function.name}#{index}"
        self._settled = threading.Event()  # init over: ready, init error or exit
        self.api = RuntimeApi(self.name, settled=self._settled)
        self.process: subprocess.Popen[bytes] | None = None
        self.exited = threading.Event()
        self.init_duration_ms: float | None = None
        self.holds_init_slot = False
        self.current_request = "init"
        self._reader: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> None:
        self.api.start()
        environment = process_environment(self.function, self.launch, self.variables, self.api.address,
                                          self.region)
        environment["AWS_LAMBDA_LOG_STREAM_NAME"] = f"local/[$LATEST]{uuid.uuid4().hex}"
        self._started = time.monotonic()
        self.process = _spawner.spawn(lambda: subprocess.Popen(  # noqa: S603 - the runtime and AWS's bootstrap
            [str(self.launch.python), "-m", "awslambdaric", self.function.handler_path],
            cwd=self.launch.code_dir, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks
        ))
        self._reader = threading.Thread(target=self._read_output, args=(self.process.stdout,),
                                        name=f"{self.name}-output", daemon=True)
        self._reader.start()

    def wait_init(self, limit_s: float) -> dict[str, Any] | None:
        """None once the runtime asks for work; else the error that ended its init phase."""
        self._settled.wait(limit_s)
        if self.api.ready.is_set() and not self.exited.is_set():
            self.init_duration_ms = (time.monotonic() - self._started) * 1000
            return None
        if self.api.init_error is not None:
            return self.api.init_error
        if self.exited.is_set():
            return exit_error("", self.returncode())
        return {"errorType": "Runtime.InitTimeout",
                "errorMessage": f"Init phase did not complete within {limit_s:.2f} seconds"}

    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def kill(self) -> None:
        """SIGKILL, as Lambda ends an environment after a timeout; safe to call more than once."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        self.api.stop()

    @property
    def alive(self) -> bool:
        return not self.exited.is_set() and self.process is not None and self.process.poll() is None

    def max_memory_mb(self) -> int:
        """The process's peak resident memory (VmHWM), as REPORT's ``Max Memory Used``."""
        if self.process is None:
            return 0
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        except (OSError, ValueError, IndexError):
            pass
        return 0

    # -- output
    def _read_output(self, stream: IO[bytes] | None) -> None:
        if stream is not None:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line:
                    function_log.log(output_level(line), "[%s %s] %s", self.function.name,
                                     self.current_request[:8], line)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        self.exited.set()
        self._settled.set()
        status = self.returncode()
        self.api.fail_all(lambda request_id: exit_error(request_id, status))

    def hand_over(self, handover: Handover) -> None:
        self.api.hand_over(handover)
        if self.exited.is_set():  # died before it could take it: the reader may have drained already
            self.api.fail_all(lambda request_id: exit_error(request_id, self.returncode()))


class InitSlots:
    """How many environments of the whole stack may be in their init phase at once. On Lambda every
    environment initialises on CPU of its own; here they share this machine's cores, so a burst of
    cold starts (24 WebSocket clients connecting at once) would starve each other. An invocation that
    finds every environment busy and no free slot waits for whichever comes first: a warm environment
    released, or a slot. One condition serves every pool, so a slot freed by one wakes the others."""

    def __init__(self, slots: int | None = None) -> None:
        self.slots = slots or max(2, os.cpu_count() or 2)
        self.in_use = 0
        self.peak = 0  # most inits seen at once
        self.condition = threading.Condition()


DEFAULT_INIT_SLOTS = InitSlots()


@dataclass
class _Ticket:
    """One invocation on its way through a pool; ``abandoned`` once its caller stopped waiting."""

    request_id: str
    body: bytes
    client_context: str | None = None
    abandoned: bool = False
    outcome: Invocation | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self, outcome: Invocation) -> None:
        self.outcome = outcome
        self.done.set()


@dataclass
class PoolStats:
    cold_starts: int = 0
    init_errors: int = 0
    timeouts: int = 0
    invocations: int = 0
    init_durations_ms: list[float] = field(default_factory=list)


class EnvironmentPool:
    """The execution environments of one function: reused while warm, created up to ``max_environments``."""

    def __init__(self, function: LocalFunction, launch: Launch, variables: Mapping[str, str], region: str,
                 max_environments: int = DEFAULT_MAX_ENVIRONMENTS, init_slots: InitSlots = DEFAULT_INIT_SLOTS) -> None:
        self.function = function
        self.init_slots = init_slots
        self.launch = launch
        self.variables = dict(variables)
        self.region = region
        self.max_environments = max_environments
        self.stats = PoolStats()
        self._idle: list[ExecutionEnvironment] = []
        self._all: set[ExecutionEnvironment] = set()
        self._created = 0
        self._closed = False
        self._condition = init_slots.condition

    # -- environments
    def _acquire(self, ticket: _Ticket) -> tuple[ExecutionEnvironment | None, bool]:
        """An idle environment, else a new one (a cold start), else wait for whichever comes first.

        A function's first environment starts at once; more environments (scaling out) take an init
        slot, and only after the invocation has waited ``SCALE_OUT_AFTER_S`` for a warm one: on two
        cores, a burst of short invocations is served sooner by the warm environments than by a storm
        of cold starts competing with them for the CPU."""
        waiting_since = time.monotonic()
        with self._condition:
            while True:
                if self._closed or ticket.abandoned:
                    return None, False
                while self._idle:
                    environment = self._idle.pop()
                    if environment.alive:
                        return environment, False
                    self._discard_locked(environment)
                timeout: float | None = None
                if len(self._all) < self.max_environments:
                    if not self._all:
                        return self._new_environment_locked(holds_slot=False), True
                    waited = time.monotonic() - waiting_since
                    if waited < SCALE_OUT_AFTER_S:
                        timeout = SCALE_OUT_AFTER_S - waited
                    elif self.init_slots.in_use < self.init_slots.slots:
                        return self._new_environment_locked(holds_slot=True), True
                self._condition.wait(timeout)

    def _new_environment_locked(self, *, holds_slot: bool) -> ExecutionEnvironment:
        if holds_slot:  # given back when its init phase ends (_initialise)
            self.init_slots.in_use += 1
            self.init_slots.peak = max(self.init_slots.peak, self.init_slots.in_use)
        self._created += 1
        environment = ExecutionEnvironment(self.function, self.launch, self.variables, self.region, self._created)
        environment.holds_init_slot = holds_slot
        self._all.add(environment)
        return environment

    def _release(self, environment: ExecutionEnvironment) -> None:
        with self._condition:
            if environment.alive and not self._closed:
                self._idle.append(environment)
            else:
                self._discard_locked(environment)
            self._condition.notify_all()

    def _discard(self, environment: ExecutionEnvironment) -> None:
        environment.kill()
        with self._condition:
            self._discard_locked(environment)
            self._condition.notify_all()

    def _discard_locked(self, environment: ExecutionEnvironment) -> None:
        self._all.discard(environment)
        if environment.alive:
            threading.Thread(target=environment.kill, daemon=True).start()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            environments = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._condition.notify_all()
        for environment in environments:
            environment.kill()

    def describe(self) -> dict[str, Any]:
        with self._condition:
            return {"environments": len(self._all), "idle": len(self._idle), "max": self.max_environments,
                    "cold_starts": self.stats.cold_starts, "invocations": self.stats.invocations,
                    "timeouts": self.stats.timeouts, "init_errors": self.stats.init_errors,
                    "init_durations_ms": [round(value, 1) for value in self.stats.init_durations_ms]}

    # -- invocations
    def invoke(self, event: Any, *, request_id: str | None = None, wait_s: float | None = None,
               client_context: str | None = None) -> Invocation:
        """Run ``event`` in an environment. With ``wait_s`` (API Gateway's integration timeout) the caller
        waits at most that long in all, queueing and cold start included, and then gets ``cut``: an
        invocation already handed to its environment runs on to its end or its timeout, as on Lambda;
        one still queued for an environment is dropped."""
        request_id = request_id or str(uuid.uuid4())
        ticket = _Ticket(request_id, json.dumps(event).encode(), client_context)
        if wait_s is None:
            return self._run(ticket)
        threading.Thread(target=lambda: ticket.finish(self._run(ticket)), name=f"{self.function.name}-invoke",
                         daemon=True).start()
        if ticket.done.wait(wait_s):
            assert ticket.outcome is not None
            return ticket.outcome
        with self._condition:
            ticket.abandoned = True
            self._condition.notify_all()
        return Invocation(request_id, error={"errorType": "Gateway.Timeout",
                                             "errorMessage": f"stopped waiting after {wait_s:.2f} s"}, cut=True)

    def _run(self, ticket: _Ticket) -> Invocation:
        """One invocation from start to end: an environment, its init if cold, the handler, its timeout."""
        request_id = ticket.request_id
        environment, cold = self._acquire(ticket)
        if environment is None:
            return Invocation(request_id, error={"errorType": "ServiceException",
                                                 "errorMessage": "not run: the caller or the stack went away"})
        if cold:
            error = self._initialise(environment)
            if error is not None:
                return Invocation(request_id, error={**error, "requestId": request_id})
        timeout_s = self.function.timeout_s
        handover = Handover(request_id, ticket.body, int((time.time() + timeout_s) * 1000), self.function.arn,
                            client_context=ticket.client_context)
        environment.current_request = request_id
        function_log.debug("[%s %s] START RequestId: %s Version: $LATEST", self.function.name, request_id[:8],
                           request_id)
        with self._condition:
            self.stats.invocations += 1
        started = time.monotonic()
        environment.hand_over(handover)
        if handover.done.wait(timeout_s):
            return self._finished(environment, handover, started, cold)
        return self._timed_out(environment, handover, started)

    def _initialise(self, environment: ExecutionEnvironment) -> dict[str, Any] | None:
        """Start the environment and wait out its init phase; gives its init slot back either way."""
        try:
            return self._start_and_init(environment)
        finally:
            with self._condition:
                if environment.holds_init_slot:
                    self.init_slots.in_use -= 1
                    environment.holds_init_slot = False
                self._condition.notify_all()

    def _start_and_init(self, environment: ExecutionEnvironment) -> dict[str, Any] | None:
        with self._condition:
            self.stats.cold_starts += 1
        try:
            environment.start()
        except OSError as error:
            self._discard(environment)
            log.error("%s: cannot start an environment: %s", self.function.name, error)
            return {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": str(error)}
        error = environment.wait_init(INIT_TIMEOUT_S + self.function.timeout_s)
        if error is None:
            with self._condition:
                self.stats.init_durations_ms.append(environment.init_duration_ms or 0.0)
            function_log.info("[%s init] cold start: init took %.0f ms", self.function.name,
                              environment.init_duration_ms or 0.0)
            return None
        with self._condition:
            self.stats.init_errors += 1
        log.error("%s: init failed (%s): %s", self.function.name, error.get("errorType"), error.get("errorMessage"))
        self._discard(environment)
        return error

    def _finished(self, environment: ExecutionEnvironment, handover: Handover, started: float,
                  cold: bool) -> Invocation:
        self._report(environment, handover.request_id, started, cold)
        self._release(environment)
        if handover.error is not None:
            error = {**handover.error}
            error.setdefault("requestId", handover.request_id)
            return Invocation(handover.request_id, error=error)
        try:
            payload = json.loads(handover.response) if handover.response else None
        except ValueError:
            payload = (handover.response or b"").decode("utf-8", "replace")
        return Invocation(handover.request_id, payload=payload)

    def _timed_out(self, environment: ExecutionEnvironment, handover: Handover, started: float) -> Invocation:
        error = timeout_error(handover.request_id, self.function.timeout_s)
        handover.finish(error=error)
        with self._condition:
            self.stats.timeouts += 1
        function_log.error("[%s %s] %s", self.function.name, handover.request_id[:8], error["errorMessage"])
        self._report(environment, handover.request_id, started, False)
        self._discard(environment)
        return Invocation(handover.request_id, error=error, timed_out=True)

    def _report(self, environment: ExecutionEnvironment, request_id: str, started: float, cold: bool) -> None:
        duration_ms = (time.monotonic() - started) * 1000
        init_ms = environment.init_duration_ms if cold else None
        init = f"\tInit Duration: {init_ms:.2f} ms" if init_ms else ""
        function_log.debug("[%s %s] END RequestId: %s", self.function.name, request_id[:8], request_id)
        function_log.debug(
            "[%s %s] REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\t"
            "Max Memory Used: %d MB%s", self.function.name, request_id[:8], request_id, duration_ms,
            int(duration_ms) + 1, self.function.memory_mb, environment.max_memory_mb(), init)
        environment.current_request = "-"
