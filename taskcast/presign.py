"""Presigned S3 requests: where a client uploads a declared object, and where it reads a large result.

S3 itself enforces what is signed: a presigned PUT signs ``Content-Type`` and ``Content-Length``
(another type or size answers 403 ``SignatureDoesNotMatch``) and carries its expiry (403
``AccessDenied``, "Request has expired"); a presigned POST policy, used when no size is declared,
bounds the size with ``content-length-range`` (400 ``EntityTooLarge``) and pins the content type.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from taskcast.uploads import Upload


def s3_addressing(environ: Mapping[str, str]) -> dict[str, str]:
    """Regional virtual-hosted URLs (``<bucket>.s3.<region>.amazonaws.com``) on AWS.

    The legacy global endpoint answers 307 for new buckets outside us-east-1 and 400 in newer regions,
    and browsers do not follow redirects of a PUT or POST upload. An endpoint override (the local S3
    front, ``http://127.0.0.1:3003``) keeps path-style URLs: a bucket cannot be a subdomain of it.
    """
    if environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL"):
        return {"addressing_style": "path"}
    return {"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"}


def presigning_client(region: str | None = None) -> Any:
    """An S3 client that signs with SigV4 (boto3 still presigns us-east-1 URLs with SigV2 by default).

    Its region is the function's own (``AWS_REGION``) unless given. Its endpoint comes from
    ``AWS_ENDPOINT_URL_S3`` like every other client, so locally the URLs name the local S3 front.
    """
    return boto3.session.Session().client(
        "s3",
        region_name=region,
        config=Config(
            signature_version="s3v4",
            s3=s3_addressing(os.environ),
            retries={"max_attempts": 5, "mode": "standard"},
        ),
    )


@dataclass(frozen=True)
class UploadTarget:
    """How to send the file: ``PUT url`` with ``headers``, or ``POST url`` as a form with ``fields`` then the file."""

    method: str
    url: str
    expires_at: int  # epoch seconds
    headers: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"method": self.method, "url": self.url}
        if self.method == "PUT":
            answer["headers"] = self.headers
        else:
            answer["fields"] = self.fields
        return answer


def presign_upload(s3: Any, bucket: str, upload: Upload, now: int) -> UploadTarget:
    """A presigned PUT when the size is declared (both size and type signed), else a POST policy."""
    expires_in = max(1, upload.url_expires_at - now)
    if upload.size is not None:
        url = s3.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": bucket,
                "Key": upload.key,
                "ContentType": upload.content_type,
                "ContentLength": upload.size,
            },
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        headers = {"Content-Type": upload.content_type, "Content-Length": str(upload.size)}
        return UploadTarget("PUT", url, upload.url_expires_at, headers=headers)
    post = s3.generate_presigned_post(
        bucket,
        upload.key,
        Fields={"Content-Type": upload.content_type},
        Conditions=[{"Content-Type": upload.content_type}, ["content-length-range", 0, upload.max_size]],
        ExpiresIn=expires_in,
    )
    return UploadTarget("POST", post["url"], upload.url_expires_at, fields=dict(post["fields"]))


def presign_get(s3: Any, bucket: str, key: str, expires_in: int) -> str:
    return str(s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=max(1, expires_in), HttpMethod="GET"
    ))
