"""The ``@connections`` management API on 127.0.0.1:3002, as boto3's ``apigatewaymanagementapi``
client calls it with ``endpoint_url="http://127.0.0.1:3002"`` (a stage prefix, as in the AWS URL, is
accepted too):

- ``POST /@connections/{id}``: the body goes to the client as one text frame (binary if not UTF-8);
- ``GET /@connections/{id}``: ``connectedAt``, ``identity`` (``sourceIp``, ``userAgent``), ``lastActiveAt``
  (boto3 reads them as ``ConnectedAt``, ``Identity``, ``LastActiveAt``);
- ``DELETE /@connections/{id}``: closes the connection (1000), 204;
- unknown or closed ids: 410 ``GoneException``; a body over 128 KB: 413 ``PayloadTooLargeException``.

Local extension: ``GET /@connections`` answers ``{"connections": [ids]}``, the live connection ids.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote

from taskcast.local.httpserver import HTTPService, LocalHTTPServer, QuietHandler
from taskcast.local.websocket_gateway import Gone, WebSocketGateway

MAX_POST_BYTES = 128 * 1024
_CONNECTION_PATH = re.compile(r"^(?:/[^/@]+)?/@connections(?:/(?P<id>[^/]+))?/?$")


class ConnectionsApi(HTTPService):
    def __init__(self, gateway: WebSocketGateway, host: str = "127.0.0.1", port: int = 3002) -> None:
        self.gateway = gateway
        self.server = LocalHTTPServer(_ConnectionsHandler, self, host, port, name="connections-api")



class _ConnectionsHandler(QuietHandler):
    server_version = "taskcast-local-connections"

    def _serve(self) -> None:
        api: ConnectionsApi = self.server.owner  # type: ignore[attr-defined]
        gateway = api.gateway
        headers = [("x-amzn-RequestId", str(uuid.uuid4()))]
        match = _CONNECTION_PATH.match(self.path.split("?", 1)[0])
        body = self.read_body(MAX_POST_BYTES)
        if body is None:
            self._error(413, "PayloadTooLargeException", "Message payload is larger than 128 KB.", headers)
            return
        if match is None:
            self._error(403, "ForbiddenException", f"No operation for {self.command} {self.path}", headers)
            return
        connection_id = unquote(match.group("id") or "")
        try:
            if not connection_id and self.command == "GET":
                self.send_json(200, {"connections": gateway.connection_ids()}, headers)
            elif not connection_id:
                self._error(403, "ForbiddenException", "A connection id is required.", headers)
            elif self.command == "POST":
                gateway.post(connection_id, body)
                self.send(200, b"", headers)
            elif self.command == "GET":
                self.send_json(200, gateway.describe(connection_id), headers)
            elif self.command == "DELETE":
                gateway.disconnect(connection_id)
                self.send(204, b"", headers)
            else:
                self._error(403, "ForbiddenException", f"{self.command} is not supported on @connections.", headers)
        except Gone:
            self._error(410, "GoneException", None, headers)
        except TimeoutError:
            self._error(429, "LimitExceededException", "The connection is not reading its messages.", headers)

    def _error(self, status: int, code: str, message: str | None, headers: list[tuple[str, str]]) -> None:
        self.send_json(status, {"message": message}, [*headers, ("x-amzn-ErrorType", code)])

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve  # noqa: N815
