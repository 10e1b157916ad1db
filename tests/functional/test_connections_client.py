"""The lean ``PostToConnection`` client answers as boto3's ``apigatewaymanagementapi`` client does.

Both clients post to the same stub of the ``@connections`` endpoint, which answers each scripted way
AWS can (200, 410 GoneException, 429 LimitExceededException, 500, 403, 413) and checks every request's
SigV4 signature against the request as it arrived. Whatever boto3's client returns or raises (type, code,
HTTP status), the lean one must too: ``ConnectionPoster`` classifies errors by exactly those.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from taskcast.push.connections_client import ConnectionsClient
from taskcast.push.fanout import is_gone, is_retryable

REGION = "eu-west-1"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")

# status, x-amzn-ErrorType, body
ANSWERS: dict[str, tuple[int, str | None, bytes]] = {
    "delivered": (200, None, b""),
    "gone": (410, "GoneException:http://internal.amazon.com/coral/com.amazonaws.gatewayservice/", b'{"message":null}'),
    "throttled": (429, "LimitExceededException", b'{"message":"Rate exceeded"}'),
    "server-error": (500, "InternalServerErrorException", b'{"message":"Internal server error"}'),
    "forbidden": (403, "ForbiddenException", b'{"message":"Forbidden"}'),
    "too-large": (413, "PayloadTooLargeException", b'{"message":"Message too long"}'),
    "no-type-header": (502, None, b"<html>bad gateway</html>"),
}


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        server: Any = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        server.received.append((self.path, body, _signature_valid(self, body)))
        status, error_type, answer = ANSWERS[server.answer]
        self.send_response(status)
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("x-amzn-RequestId", "req-1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def _signature_valid(handler: BaseHTTPRequestHandler, body: bytes) -> bool:
    """Sign the request as it arrived (path, body, date, token, host) and compare with what it carries."""
    sent = handler.headers.get("Authorization", "")
    signed_names = sent.split("SignedHeaders=", 1)[-1].split(",", 1)[0].split(";")
    request = AWSRequest(method="POST", url=f"http://{handler.headers['Host']}{handler.path}", data=body,
                         headers={name: handler.headers[name] for name in signed_names if name != "host"})
    signer = SigV4Auth(CREDENTIALS.get_frozen_credentials(), "execute-api", REGION)
    request.context["timestamp"] = handler.headers["X-Amz-Date"]
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return sent.endswith(f"Signature={expected}") and "Credential=AKIDEXAMPLE/" in sent


@pytest.fixture(scope="module")
def stub() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.received = []
    server.answer = "delivered"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _clients(endpoint: str) -> dict[str, Any]:
    session = boto3.session.Session(aws_access_key_id=CREDENTIALS.access_key, region_name=REGION,
                                    aws_secret_access_key=CREDENTIALS.secret_key, aws_session_token=CREDENTIALS.token)
    reference = session.client("apigatewaymanagementapi", endpoint_url=endpoint,
                               config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    return {"boto3": reference, "lean": ConnectionsClient(endpoint, region=REGION, credentials=CREDENTIALS)}


def _outcome(client: Any, connection_id: str, data: bytes) -> tuple[Any, ...]:
    try:
        answer = client.post_to_connection(ConnectionId=connection_id, Data=data)
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        return ("ClientError", error.response["Error"]["Code"], status, is_gone(error), is_retryable(error))
    return ("ok", answer["ResponseMetadata"]["HTTPStatusCode"])


@pytest.mark.parametrize("answer", sorted(ANSWERS))
@pytest.mark.parametrize("stage", ["", "/prod"])
def test_the_lean_client_answers_as_boto3_does(stub: Any, answer: str, stage: str) -> None:
    stub.answer = answer
    clients = _clients(f"http://127.0.0.1:{stub.server_address[1]}{stage}")
    data = json.dumps({"type": "task.status", "task_id": "t1", "version": 3, "note": "é"}).encode()
    outcomes = {}
    for name, client in clients.items():
        stub.received.clear()
        outcomes[name] = _outcome(client, "Ab1=cD/+", data)
        ((path, body, signature_ok),) = stub.received
        assert path == f"{stage}/@connections/Ab1%3DcD%2F%2B", name
        assert body == data, name
        assert signature_ok, f"{name}: the signature does not match the request as received"
    assert outcomes["lean"] == outcomes["boto3"]


def test_a_closed_port_is_a_retryable_connection_error_for_both() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    port = server.server_address[1]
    server.server_close()
    for name, client in _clients(f"http://127.0.0.1:{port}").items():
        with pytest.raises(ConnectionError) as raised:
            client.post_to_connection(ConnectionId="abc", Data=b"{}")
        assert is_retryable(raised.value), name


def test_a_receiver_that_never_answers_is_a_read_timeout() -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        client = ConnectionsClient(f"http://127.0.0.1:{listener.getsockname()[1]}", region=REGION,
                                   credentials=CREDENTIALS, read_timeout_s=0.3)
        with pytest.raises(ReadTimeoutError) as raised:
            client.post_to_connection(ConnectionId="abc", Data=b"{}")
        assert is_retryable(raised.value)
    finally:
        listener.close()
