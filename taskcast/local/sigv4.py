"""S3's checks of presigned requests, as pure functions: SigV4 query-string authentication (presigned
GET / PUT / HEAD) and browser POST policies. The local S3 front uses them because moto's S3 accepts
any presigned request — expired, resigned or with other headers — and AWS never does.

Each check returns None (accepted) or an ``S3Error``: the status, code and message S3 answers with,
plus the extra elements S3 puts in its XML error body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_EXPIRES_S = 7 * 24 * 3600
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_QUERY_PARAMETERS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                     "X-Amz-SignedHeaders", "X-Amz-Expires")
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your key and signing method."
)
SecretLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class S3Error:
    status: int
    code: str
    message: str
    details: dict[str, str] = field(default_factory=dict)


def _iso_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_amz_date(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(raw_query: str) -> str:
    """Every parameter but the signature, each name and value URI-encoded, sorted."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name, value = unquote(name), unquote(value)
        if name != "X-Amz-Signature":
            pairs.append((_encode(name), _encode(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _header_value(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return " ".join(value.split())
    return ""


def canonical_request(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
                      signed_headers: list[str]) -> str:
    """S3's canonical request of a presigned call: the path exactly as sent (S3 does not normalize it)
    and an unsigned payload."""
    canonical_headers = "".join(f"{name}:{_header_value(headers, name)}\n" for name in signed_headers)
    return "\n".join([method.upper(), raw_path, canonical_query(raw_query), canonical_headers,
                      ";".join(signed_headers), UNSIGNED_PAYLOAD])


def query_parameters(raw_query: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            parameters.setdefault(unquote(name), unquote(value))
    return parameters


def is_presigned(raw_query: str) -> bool:
    return "X-Amz-Signature" in query_parameters(raw_query)


def check_presigned(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
                    secret_of: SecretLookup, now: float) -> S3Error | None:
    """S3's answer to a SigV4 presigned request: None when it is accepted."""
    parameters = query_parameters(raw_query)
    if any(name not in parameters for name in _QUERY_PARAMETERS) or parameters["X-Amz-Algorithm"] != ALGORITHM:
        return S3Error(400, "AuthorizationQueryParametersError",
                       "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                       "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
    credential = parameters["X-Amz-Credential"].split("/")
    signed_at = _parse_amz_date(parameters["X-Amz-Date"])
    try:
        expires_s = int(parameters["X-Amz-Expires"])
    except ValueError:
        expires_s = -1
    if len(credential) != 5 or credential[3] != "s3" or credential[4] != "aws4_request" or signed_at is None:
        return S3Error(400, "AuthorizationQueryParametersError",
                       "Error parsing the X-Amz-Credential parameter; the credential is mal-formed.")
    if not 0 < expires_s <= MAX_EXPIRES_S:
        return S3Error(400, "AuthorizationQueryParametersError",
                       "X-Amz-Expires must be less than a week (in seconds) that is 604800")
    access_key, date, region = credential[0], credential[1], credential[2]
    secret = secret_of(access_key)
    if secret is None:
        return S3Error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.",
                       {"AWSAccessKeyId": access_key})
    signed_headers = parameters["X-Amz-SignedHeaders"].lower().split(";")
    request = canonical_request(method, raw_path, raw_query, headers, signed_headers)
    scope = "/".join(credential[1:])
    string_to_sign = "\n".join([ALGORITHM, parameters["X-Amz-Date"], scope,
                                hashlib.sha256(request.encode()).hexdigest()])
    expected = hmac.new(signing_key(secret, date, region, "s3"), string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parameters["X-Amz-Signature"]):
        return S3Error(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH, {
            "AWSAccessKeyId": access_key, "StringToSign": string_to_sign,
            "SignatureProvided": parameters["X-Amz-Signature"], "CanonicalRequest": request,
        })
    if now > signed_at + expires_s:
        return S3Error(403, "AccessDenied", "Request has expired", {
            "X-Amz-Expires": str(expires_s), "Expires": _iso_time(signed_at + expires_s), "ServerTime": _iso_time(now),
        })
    return None


# ------------------------------------------------------------------------------------------- POST policy
def _policy_denied(reason: str) -> S3Error:
    return S3Error(403, "AccessDenied", f"Invalid according to Policy: {reason}")


def _condition_text(condition: Any) -> str:
    return json.dumps(condition, separators=(", ", ": "))


def _field_condition(condition: Any) -> tuple[str, str, str] | None:
    """``{"key": "v"}`` or ``["eq", "$key", "v"]`` / ``["starts-with", "$key", "v"]`` → (operator, field, value)."""
    if isinstance(condition, dict) and len(condition) == 1:
        ((name, value),) = condition.items()
        return "eq", str(name).lower(), str(value)
    if isinstance(condition, list) and len(condition) == 3 and condition[0] in ("eq", "starts-with"):
        name = str(condition[1])
        return str(condition[0]), name.removeprefix("$").lower(), str(condition[2])
    return None


def check_post_policy(bucket: str, fields: Mapping[str, str], file_size: int, secret_of: SecretLookup,
                      now: float) -> S3Error | None:
    """S3's answer to a browser POST upload of ``file_size`` bytes with form ``fields`` (names as sent)."""
    form = {name.lower(): value for name, value in fields.items()}
    policy_b64 = form.get("policy")
    if policy_b64 is None or "x-amz-signature" not in form or "x-amz-credential" not in form:
        return S3Error(400, "InvalidArgument", "Bucket POST must contain a field named 'policy' and its signature.")
    credential = form["x-amz-credential"].split("/")
    if len(credential) != 5 or form.get("x-amz-algorithm") != ALGORITHM:
        return S3Error(400, "InvalidArgument", "Invalid according to Policy: the credential is mal-formed.")
    secret = secret_of(credential[0])
    if secret is None:
        return S3Error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.",
                       {"AWSAccessKeyId": credential[0]})
    expected = hmac.new(signing_key(secret, credential[1], credential[2], "s3"), policy_b64.encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, form["x-amz-signature"]):
        return S3Error(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH,
                       {"AWSAccessKeyId": credential[0], "StringToSign": policy_b64,
                        "SignatureProvided": form["x-amz-signature"]})
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
        expiration = datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00")).timestamp()
        conditions = list(policy["conditions"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return S3Error(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.")
    if now > expiration:
        return _policy_denied("Policy expired.")
    return _check_conditions(bucket, form, file_size, conditions)


def _check_conditions(bucket: str, form: dict[str, str], file_size: int, conditions: list[Any]) -> S3Error | None:
    values = {**form, "bucket": bucket}
    covered = {"bucket"}
    for condition in conditions:
        if isinstance(condition, list) and condition and condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if file_size > high:
                return S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                               {"ProposedSize": str(file_size), "MaxSizeAllowed": str(high)})
            if file_size < low:
                return S3Error(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
                               {"ProposedSize": str(file_size), "MinSizeAllowed": str(low)})
            continue
        parsed = _field_condition(condition)
        if parsed is None:
            return S3Error(400, "InvalidPolicyDocument",
                           f"Invalid Policy: Invalid Condition: {_condition_text(condition)}")
        operator, name, expected = parsed
        covered.add(name)
        actual = values.get(name, "")
        if (operator == "eq" and actual != expected) or (operator == "starts-with" and not actual.startswith(expected)):
            shown = condition if isinstance(condition, list) else ["eq", f"${next(iter(condition))}", expected]
            return _policy_denied(f"Policy Condition failed: {_condition_text(shown)}")
    exempt = {"policy", "x-amz-signature", "file"}
    extra = [name for name in form if name not in covered and name not in exempt and not name.startswith("x-ignore-")]
    if extra:
        return _policy_denied(f"Extra input fields: {', '.join(extra)}")
    return None
