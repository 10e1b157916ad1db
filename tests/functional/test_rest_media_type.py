"""Bodies are JSON whatever a client labels them, unless the label names another media type."""

from __future__ import annotations

import json

import pytest

from taskcast.api.app import with_json_body


def _event(content_type: str | None, body: str = '{"type": "sleep"}') -> dict:
    headers = {} if content_type is None else {"content-type": content_type}
    return {"body": body, "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()}}


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_unlabelled_or_form_bodies_are_read_as_json(content_type: str | None) -> None:
    relabelled = with_json_body(_event(content_type))
    assert relabelled is not None
    assert relabelled["headers"] == {"Content-Type": "application/json"}
    assert relabelled["multiValueHeaders"] == {"Content-Type": ["application/json"]}
    assert json.loads(relabelled["body"]) == {"type": "sleep"}


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_bodies_pass_unchanged(content_type: str) -> None:
    event = _event(content_type)
    assert with_json_body(event) is event


def test_another_media_type_is_refused() -> None:
    assert with_json_body(_event("application/xml", "<task/>")) is None


def test_requests_without_a_body_pass_unchanged() -> None:
    event = _event(None, body="")
    assert with_json_body(event) is event
