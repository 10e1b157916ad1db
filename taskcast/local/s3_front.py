"""The local S3 front: a small proxy on its own port between S3 clients and moto's S3.

moto's S3 accepts every presigned request, so the local stack would let through what AWS refuses: an
expired URL, another content type, another size. The front checks what S3 checks and answers the way
S3 does (status, XML ``<Error>`` body) before anything reaches moto:

- presigned requests (``X-Amz-Signature`` in the query: the upload PUT, the result GET): the SigV4
  signature over the signed headers as sent (``Content-Type``, ``Content-Length``) and the expiry;
- browser POST uploads (``multipart/form-data`` to the bucket): the policy's signature, expiry and
  conditions, the file's size against ``content-length-range``.

Everything else (the handlers' own header-signed calls) goes to moto unchanged. The handlers' S3
client points here (``AWS_ENDPOINT_URL_S3``) so the URLs they presign name the front. Bodies are
streamed in both directions, never held whole in memory; a POST upload is spooled to a temporary
file (its size is known only at its end), then forwarded.
"""

from __future__ import annotations

import http.client
import logging
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from taskcast.local.httpserver import LocalHTTPServer, QuietHandler
from taskcast.local.sigv4 import S3Error, check_post_policy, check_presigned, is_presigned

log = logging.getLogger("taskcast.local")

CHUNK_BYTES = 64 * 1024
# A refused request's body is read and dropped up to this size, so the client sees the answer instead
# of a reset connection; beyond it the connection is closed.
DRAIN_LIMIT_BYTES = 512 * 1024 * 1024
# S3 refuses form fields before the file that exceed 20 KB.
MAX_POST_PREFIX_BYTES = 20 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade"}
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION_NAME = re.compile(r'\bname="([^"]*)"', re.IGNORECASE)


def error_xml(error: S3Error, request_id: str, host_id: str) -> bytes:
    """S3's error document."""
    extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in error.details.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{error.code}</Code><Message>{escape(error.message)}</Message>{extra}"
        f"<RequestId>{request_id}</RequestId><HostId>{host_id}</HostId></Error>"
    ).encode()


# ------------------------------------------------------------------------------------ multipart forms
class FormError(ValueError):
    def __init__(self, error: S3Error) -> None:
        super().__init__(error.message)
        self.error = error


def _malformed() -> FormError:
    return FormError(S3Error(400, "MalformedPOSTRequest",
                             "The body of your POST request is not well-formed multipart/form-data."))


def form_boundary(content_type: str) -> str | None:
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    match = _BOUNDARY.search(content_type)
    return match.group(1) if match else None


def parse_post_form(spool: IO[bytes], total: int, boundary: str) -> tuple[dict[str, str], int]:
    """The form fields before the ``file`` part and the file's size, from a spooled multipart body.

    S3 requires the file to be the last field, so its data runs from the end of its part headers to
    the last delimiter; only the fields (at most 20 KB) and the tail are read, never the file itself.
    """
    spool.seek(0)
    head = spool.read(MAX_POST_PREFIX_BYTES + 4096)
    delimiter = b"--" + boundary.encode()
    fields: dict[str, str] = {}
    position = head.find(delimiter)
    if position < 0:
        raise _malformed()
    while True:
        headers_start = position + len(delimiter) + 2  # the CRLF after the delimiter
        headers_end = head.find(b"\r\n\r\n", headers_start)
        if headers_end < 0:
            if len(head) > MAX_POST_PREFIX_BYTES:
                raise FormError(S3Error(400, "MaxPostPreDataLengthExceeded",
                                        "Your POST request fields preceeding the upload file was too large."))
            raise _malformed()
        part_headers = head[headers_start:headers_end].decode("utf-8", "replace")
        match = _DISPOSITION_NAME.search(part_headers)
        name = match.group(1) if match else ""
        data_start = headers_end + 4
        if name.lower() == "file":
            return fields, _file_size(spool, total, data_start, delimiter)
        next_delimiter = head.find(b"\r\n" + delimiter, data_start)
        if next_delimiter < 0:
            raise _malformed()
        fields[name] = head[data_start:next_delimiter].decode("utf-8", "replace")
        position = next_delimiter + 2


def _file_size(spool: IO[bytes], total: int, data_start: int, delimiter: bytes) -> int:
    tail_length = min(total - data_start, len(delimiter) + 64)
    spool.seek(total - tail_length)
    tail = spool.read(tail_length)
    closing = tail.rfind(b"\r\n" + delimiter + b"--")
    if closing < 0:
        raise _malformed()
    return total - tail_length + closing - data_start


# ------------------------------------------------------------------------------------ the proxy
class S3FrontHandler(QuietHandler):
    server_version = "AmazonS3"

    @property
    def front(self) -> S3Front:
        return self.server.owner  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_GET  # noqa: N815

    def _handle(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        try:
            # A CORS preflight carries no credentials, even to a presigned URL: S3 answers it from the CORS rules.
            if self.command != "OPTIONS" and is_presigned(raw_query):
                refusal = check_presigned(self.command, raw_path, raw_query, dict(self.headers.items()),
                                          self.front.secret_of, self.front.clock())
                if refusal is not None:
                    self._refuse(refusal)
                    return
            elif self.command == "POST" and not raw_query and form_boundary(self.headers.get("Content-Type", "")):
                self._post_upload(raw_path)
                return
            self._forward(self._body_chunks())
        except (ConnectionError, TimeoutError, http.client.HTTPException) as error:
            log.warning("S3 front: %s %s failed: %s", self.command, raw_path, error)
            self.close_connection = True

    # -- request bodies
    def _content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value and value.isdigit() else None

    def _body_chunks(self) -> Iterator[bytes] | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._chunked_body()
        length = self._content_length()
        return self._sized_body(length) if length else None

    def _sized_body(self, length: int) -> Iterator[bytes]:
        left = length
        while left > 0:
            chunk = self.rfile.read(min(CHUNK_BYTES, left))
            if not chunk:
                raise ConnectionError("the client closed the connection mid-body")
            left -= len(chunk)
            yield chunk

    def _chunked_body(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _drain(self) -> None:
        length = self._content_length()
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or (length or 0) > DRAIN_LIMIT_BYTES:
            self.close_connection = True
            return
        for _ in self._sized_body(length or 0):
            pass

    # -- answers
    def _refuse(self, error: S3Error, drain: bool = True) -> None:
        if drain:
            self._drain()
        request_id = secrets.token_hex(8).upper()
        host_id = secrets.token_urlsafe(48)
        body = error_xml(error, request_id, host_id)
        log.info("S3 front: %s %s refused: %s %s", self.command, self.path.partition("?")[0], error.status, error.code)
        headers = [("x-amz-request-id", request_id), ("x-amz-id-2", host_id)]
        if self.headers.get("Origin"):
            # As the bucket's CORS rule (any origin) makes S3 do, so a browser can read the refusal.
            headers.append(("Access-Control-Allow-Origin", "*"))
        self.send(error.status, body if self.command != "HEAD" else b"", headers, "application/xml")

    def _post_upload(self, raw_path: str) -> None:
        length = self._content_length()
        if length is None:
            self._refuse(S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP header."))
            return
        bucket = raw_path.strip("/").split("/", 1)[0]
        boundary = form_boundary(self.headers.get("Content-Type", "")) or ""
        with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as spool:
            for chunk in self._sized_body(length):
                spool.write(chunk)
            try:
                fields, file_size = parse_post_form(spool, length, boundary)
            except FormError as error:
                self._refuse(error.error, drain=False)
                return
            refusal = check_post_policy(bucket, fields, file_size, self.front.secret_of, self.front.clock())
            if refusal is not None:
                self._refuse(refusal, drain=False)
                return
            spool.seek(0)
            self._forward(iter(lambda: spool.read(CHUNK_BYTES), b""), length)

    def _forward(self, body: Iterator[bytes] | None, length: int | None = None) -> None:
        upstream = http.client.HTTPConnection(self.front.upstream_host, self.front.upstream_port, timeout=300)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            chunked = body is not None and length is None and self._content_length() is None
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP and not (length is not None and name.lower() == "content-length"):
                    upstream.putheader(name, value)
            if length is not None:
                upstream.putheader("Content-Length", str(length))
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.endheaders()
            for chunk in body or ():
                upstream.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                upstream.send(b"0\r\n\r\n")
            self._relay(upstream.getresponse())
        finally:
            upstream.close()

    def _relay(self, answer: http.client.HTTPResponse) -> None:
        self.send_response(answer.status, answer.reason)
        length = answer.getheader("Content-Length")
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() not in {"server", "date"}:
                self.send_header(name, value)
        streamed_without_length = length is None and self.command != "HEAD" and answer.status not in (204, 304)
        if streamed_without_length:
            self.close_connection = True  # the end of the body is the end of the connection
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        while chunk := answer.read(CHUNK_BYTES):
            self.wfile.write(chunk)


class S3Front:
    """The front on ``host:port`` (0: a free port) for moto at ``upstream_url``."""

    def __init__(self, upstream_url: str, credentials: Mapping[str, str], host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        parts = urlsplit(upstream_url)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.credentials = dict(credentials)
        self.clock = clock
        self._server = LocalHTTPServer(S3FrontHandler, self, host, port, name="s3-front")

    @property
    def url(self) -> str:
        return self._server.url

    def secret_of(self, access_key: str) -> str | None:
        return self.credentials.get(access_key)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> S3Front:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
