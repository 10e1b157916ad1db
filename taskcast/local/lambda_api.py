"""Lambda's ``Invoke`` API for boto3's ``lambda`` client (reached through ``AWS_ENDPOINT_URL_LAMBDA``):
``POST /2015-03-31/functions/{name}/invocations``.

- ``X-Amz-Invocation-Type: RequestResponse`` (default): runs the function and answers its payload;
  an error answers 200 with ``X-Amz-Function-Error: Unhandled`` and Lambda's error object.
- ``Event``: 202 at once; the function runs in the background with retries and destinations
  (``async_invoke.AsyncInvoker``).
- ``DryRun``: 204. Unknown functions answer 404 ``ResourceNotFoundException``; payloads over Lambda's
  limits (6 MB synchronous, 256 KB asynchronous) answer 413 ``RequestTooLargeException``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import unquote

from taskcast.local.async_invoke import AsyncInvoker
from taskcast.local.functions import FunctionRegistry
from taskcast.local.httpserver import HTTPService, LocalHTTPServer, QuietHandler

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 256 * 1024
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


class LambdaApi(HTTPService):
    def __init__(self, functions: FunctionRegistry, async_invoker: AsyncInvoker, host: str = "127.0.0.1",
                 port: int = 0, region: str = "us-east-1", account_id: str = "123456789012") -> None:
        self.functions = functions
        self.async_invoker = async_invoker
        self.region = region
        self.account_id = account_id
        self.server = LocalHTTPServer(_LambdaHandler, self, host, port, name="lambda")



def _error(code: str, message: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    return {"Type": "User", "message": message}, [("x-amzn-ErrorType", code)]


class _LambdaHandler(QuietHandler):
    server_version = "taskcast-local-lambda"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        api: LambdaApi = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        match = _INVOKE_PATH.match(path)
        request_id = str(uuid.uuid4())
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        limit = ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT
        body = self.read_body(limit)
        headers = [("x-amzn-RequestId", request_id)]
        if match is None:
            self._fail(404, "UnknownOperationException", f"no local operation for POST {path}", headers)
            return
        name = unquote(match.group("name"))
        function = api.functions.find(name)
        if function is None:
            arn = name if name.startswith("arn:") else f"arn:aws:lambda:{api.region}:{api.account_id}:function:{name}"
            self._fail(404, "ResourceNotFoundException", f"Function not found: {arn}", headers)
            return
        if body is None:
            self._fail(413, "RequestTooLargeException",
                       f"Request must be smaller than {limit} bytes for the {invocation_type} operation", headers)
            return
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError:
            self._fail(400, "InvalidRequestContentException",
                       "Could not parse request body into json: the payload is not valid JSON", headers)
            return
        if invocation_type == "DryRun":
            self.send(204, b"", headers)
        elif invocation_type == "Event":
            api.async_invoker.submit(function, event, request_id)
            self.send(202, b"", headers)
        elif invocation_type == "RequestResponse":
            invocation = function.invoke(event, request_id=request_id)
            headers.append(("X-Amz-Executed-Version", "$LATEST"))
            if invocation.failed:
                headers.append(("X-Amz-Function-Error", "Unhandled"))
                self.send_json(200, invocation.error, headers)
            else:
                self.send_json(200, invocation.payload, headers)
        else:
            self._fail(400, "InvalidParameterValueException",
                       f"Unsupported invocation type {invocation_type!r}", headers)

    def _fail(self, status: int, code: str, message: str, headers: list[tuple[str, str]]) -> None:
        body, extra = _error(code, message)
        self.send_json(status, body, headers + extra)
