"""The Python client's and the submit command's upload options, without a server: argument checks,
content types, and S3's XML refusals turned into problems."""

from __future__ import annotations

import io
from pathlib import Path

import requests

from taskcast_client.client import guess_content_type, s3_problem
from taskcast_client.client_cli import EXIT_USAGE, main


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    code = main(argv, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def test_file_and_input_together_or_a_missing_file_are_usage_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x")
    code, err = run(["digest", "--file", str(path), "--input", "{}", "--api-key", "k"])
    assert code == EXIT_USAGE and "--file and --input cannot be used together" in err
    code, err = run(["digest", "--file", str(tmp_path / "missing.txt"), "--api-key", "k"])
    assert code == EXIT_USAGE and "no such file" in err


def test_content_types_are_guessed_from_the_name() -> None:
    assert guess_content_type("rows.csv") == "text/csv"
    assert guess_content_type(Path("notes.txt")) == "text/plain"
    assert guess_content_type("blob.unknownext") == "application/octet-stream"


def response(status: int, body: bytes) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = body  # noqa: SLF001 - a response as requests builds it
    answer.reason = "Forbidden"
    answer.request = requests.Request("PUT", "http://127.0.0.1:1/b/k").prepare()
    return answer


def test_s3_refusals_become_problems_naming_s3s_code() -> None:
    xml = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
           b"<Message>Request has expired</Message><RequestId>1</RequestId></Error>")
    problem = s3_problem(response(403, xml))
    assert problem["type"].endswith("/upload-refused") and problem["s3_code"] == "AccessDenied"
    assert problem["detail"] == "S3 answered 403 AccessDenied: Request has expired"
    assert s3_problem(response(502, b"bad gateway"))["title"] == "Forbidden"  # not XML: as any other answer
