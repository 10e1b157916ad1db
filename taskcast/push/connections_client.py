"""``PostToConnection`` without boto3's per-call machinery: one pooled HTTP request, signed by botocore.

A status change goes to every subscriber as one ``@connections`` POST each, so the push path makes more
of these calls than of all others together, and boto3 spends most of a post's CPU on its generic layers
(parameter validation, serialisation, event hooks, response parsing) rather than on the request. This
client builds the request itself, signs it with botocore's own ``SigV4Auth`` (service ``execute-api``)
and sends it on a ``urllib3`` pool. It keeps boto3's contract where the poster relies on it: errors are
botocore's ``ClientError`` with the code from ``x-amzn-ErrorType`` (``GoneException``,
``LimitExceededException``, ...) and the HTTP status in ``ResponseMetadata``; network failures are
botocore's ``EndpointConnectionError`` / ``ReadTimeoutError``. Retries stay with ``ConnectionPoster``.
``tests/functional/test_connections_client.py`` holds it to boto3's client, answer by answer.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

OPERATION = "PostToConnection"
SERVICE = "execute-api"


def _error_code(headers: Any, body: bytes, status: int) -> tuple[str, str]:
    """(code, message) as botocore's rest-json parser reads them: the header first, then the body."""
    code = str(headers.get("x-amzn-ErrorType") or "").split(":", 1)[0]
    message = ""
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict):
        code = code or str(parsed.get("__type") or parsed.get("code") or "").rsplit("#", 1)[-1]
        message = str(parsed.get("message") or parsed.get("Message") or "")
    return code or str(status), message


class ConnectionsClient:
    """The one call of ``apigatewaymanagementapi`` the push path makes, with boto3's arguments and errors."""

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str | None = None,
        credentials: Any = None,
        pool_size: int = 32,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        session = boto3.session.Session()
        self.endpoint_url = endpoint_url.rstrip("/")
        self.region = region or session.region_name or "us-east-1"
        self._credentials = credentials if credentials is not None else session.get_credentials()
        self._timeout = urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s)
        parts = urlsplit(self.endpoint_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._pool = urllib3.connection_from_url(self._origin, maxsize=pool_size, block=False, retries=False)
        self._prefix = parts.path  # the stage on AWS ("/prod"); empty locally

    def _signer(self) -> SigV4Auth:
        # Refreshable credentials (a Lambda role's) are read per call: frozen copies do not refresh.
        if self._credentials is None:
            raise NoCredentialsError()
        frozen = self._credentials.get_frozen_credentials()
        return SigV4Auth(frozen, SERVICE, self.region)

    def post_to_connection(self, *, ConnectionId: str, Data: bytes | str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        body = Data.encode() if isinstance(Data, str) else bytes(Data)
        path = f"{self._prefix}/@connections/{quote(ConnectionId, safe='')}"
        request = AWSRequest(method="POST", url=f"{self._origin}{path}", data=body)
        self._signer().add_auth(request)
        try:
            response = self._pool.urlopen(
                "POST", path, body=body, headers=dict(request.headers.items()), timeout=self._timeout,
                retries=False, redirect=False, preload_content=True,
            )
        except urllib3.exceptions.ConnectTimeoutError as error:
            raise ConnectTimeoutError(endpoint_url=self.endpoint_url, error=error) from error
        except urllib3.exceptions.ReadTimeoutError as error:
            raise ReadTimeoutError(endpoint_url=self.endpoint_url, error=error) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise EndpointConnectionError(endpoint_url=self.endpoint_url, error=error) from error
        metadata = {"HTTPStatusCode": response.status, "HTTPHeaders": dict(response.headers.items()),
                    "RequestId": response.headers.get("x-amzn-RequestId", "")}
        if 200 <= response.status < 300:
            return {"ResponseMetadata": metadata}
        code, message = _error_code(response.headers, response.data, response.status)
        raise ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": metadata}, OPERATION)
