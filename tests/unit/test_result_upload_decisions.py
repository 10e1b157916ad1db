"""The pure pieces of uploaded results: the key scoped to its task, which keys succeed accepts, which objects."""

from __future__ import annotations

import secrets

import pytest

from taskcast.result_uploads import (
    content_type_refusal,
    is_task_result_key,
    new_result_key,
    object_refusal,
    task_prefix,
)
from taskcast.uploads import result_key

TASK_ID = "0b0e9f5e-7d3c-4a4e-9a57-3f1f5d0c2a11"
OTHER_ID = "7c1d2e3f-0000-4000-8000-000000000001"
SUFFIX = "A" * 22


def test_a_new_key_lies_under_its_tasks_prefix_with_a_random_suffix() -> None:
    key = new_result_key("acme", TASK_ID, lambda size: SUFFIX)
    assert key == f"results/acme/{TASK_ID}/{SUFFIX}.json" and key.startswith(task_prefix("acme", TASK_ID))
    first, second = new_result_key("acme", TASK_ID), new_result_key("acme", TASK_ID)
    assert first != second
    assert is_task_result_key(first, "acme", TASK_ID) and is_task_result_key(second, "acme", TASK_ID)
    assert len(secrets.token_urlsafe(16)) == 22  # the suffix's shape that is_task_result_key expects


@pytest.mark.parametrize(
    "key",
    [
        f"results/acme/{OTHER_ID}/{SUFFIX}.json",  # another task's
        f"results/globex/{TASK_ID}/{SUFFIX}.json",  # another tenant's
        result_key("acme", TASK_ID),  # the Lambda worker's own key for the task
        f"results/acme/{TASK_ID}/../{OTHER_ID}/{SUFFIX}.json",
        f"results/acme/{TASK_ID}/{SUFFIX}.json/../../{OTHER_ID}/{SUFFIX}.json",
        f"results/acme/{TASK_ID}/{'A' * 21}/.json",
        f"results/acme/{TASK_ID}/{SUFFIX}.json\n",
        f"/results/acme/{TASK_ID}/{SUFFIX}.json",
        f"uploads/acme/{SUFFIX}",
        f"results/acme/{TASK_ID}/{SUFFIX}.JSON",
        "",
    ],
)
def test_only_a_key_of_this_tasks_shape_is_accepted(key: str) -> None:
    assert not is_task_result_key(key, "acme", TASK_ID)


def test_a_tenant_or_task_with_pattern_characters_matches_only_itself() -> None:
    assert is_task_result_key(f"results/a.c/{TASK_ID}/{SUFFIX}.json", "a.c", TASK_ID)
    assert not is_task_result_key(f"results/abc/{TASK_ID}/{SUFFIX}.json", "a.c", TASK_ID)


@pytest.mark.parametrize(
    ("content_type", "refused"),
    [(None, False), ("application/json", False), ("Application/JSON; charset=utf-8", False),
     ("text/csv", True), ("application/octet-stream", True)],
)
def test_only_json_can_be_uploaded_as_a_result(content_type: str | None, refused: bool) -> None:
    assert (content_type_refusal(content_type) is not None) is refused


def test_an_uploaded_object_must_be_json_within_the_limit() -> None:
    assert object_refusal(100, "application/json", 100) is None
    assert object_refusal(0, "application/json; charset=utf-8", 100) is None
    assert object_refusal(101, "application/json", 100) == (
        "result-too-large", "The uploaded result is 101 bytes; at most 100 bytes are accepted.")
    kind, detail = object_refusal(1, "text/plain", 100) or ("", "")
    assert kind == "result-not-json" and "text/plain" in detail
    assert (object_refusal(1, None, 100) or ("",))[0] == "result-not-json"
