"""A Lambda Invoke API on 127.0.0.1 (``POST /2015-03-31/functions/{name}/invocations``), for checking
what taskcast sends to Lambda and how it reads the answers, over real HTTP with boto3."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3


@dataclass
class Invocation:
    function: str
    invocation_type: str
    payload: Any


# (status, headers, body) for one invocation.
Answer = tuple[int, dict[str, str], bytes]


class LambdaApiStub:
    def __init__(self, answer: Callable[[Invocation], Answer]) -> None:
        self.answer = answer
        self.invocations: list[Invocation] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server interface
                parts = self.path.split("?")[0].strip("/").split("/")
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                invocation = Invocation(
                    function=parts[2] if len(parts) >= 4 else "",
                    invocation_type=self.headers.get("X-Amz-Invocation-Type", "RequestResponse"),
                    payload=json.loads(raw) if raw else None,
                )
                stub.invocations.append(invocation)
                status, headers, body = stub.answer(invocation)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def client(self) -> Any:
        return boto3.client("lambda", endpoint_url=self.endpoint)

    def __enter__(self) -> LambdaApiStub:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
