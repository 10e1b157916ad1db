"""Presigned URLs name the bucket's regional virtual-hosted endpoint (no network: presigning is local)."""

from __future__ import annotations

import pytest

from taskcast.presign import presigning_client


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("region", ["eu-west-1", "ap-southeast-5", "us-east-1"])
def test_presigned_urls_use_the_regional_virtual_hosted_endpoint(region: str) -> None:
    s3 = presigning_client(region)
    host = f"https://taskcast-payloads.s3.{region}.amazonaws.com/"

    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "taskcast-payloads", "Key": "results/t.json"})
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "taskcast-payloads", "Key": "uploads/acme/u1"}, HttpMethod="PUT"
    )
    post = s3.generate_presigned_post("taskcast-payloads", "uploads/acme/u2")

    assert get_url.startswith(host + "results/t.json?")
    assert put_url.startswith(host + "uploads/acme/u1?")
    assert post["url"] == host
    assert f"%2F{region}%2Fs3%2Faws4_request" in get_url  # SigV4, scoped to the bucket's region


@pytest.mark.usefixtures("aws_env")
def test_the_region_comes_from_the_functions_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    url = presigning_client().generate_presigned_url("get_object", Params={"Bucket": "b-1", "Key": "k"})
    assert url.startswith("https://b-1.s3.eu-west-1.amazonaws.com/k?")


@pytest.mark.usefixtures("aws_env")
def test_an_endpoint_override_keeps_path_style_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:3003")
    url = presigning_client("eu-west-1").generate_presigned_url("get_object", Params={"Bucket": "b-1", "Key": "k"})
    assert url.startswith("http://127.0.0.1:3003/b-1/k?")
