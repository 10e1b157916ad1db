"""The JSON depth scanner: counts nesting without parsing, ignores brackets inside strings."""

from __future__ import annotations

import pytest

from taskcast.jsondepth import MAX_JSON_DEPTH, nesting_depth_exceeds


@pytest.mark.parametrize(
    ("text", "exceeds"),
    [
        ("[" * 100_000, True),
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, False),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), True),
        ('{"a": "' + "[" * 1000 + '"}', False),
        ('{"a": "\\"' + "[" * 1000 + '"}', False),  # an escaped quote does not end the string
        ('["' + "[" * 1000, False),  # an unterminated string runs to the end
        ("[[]]" * 10_000, False),  # siblings do not add up
        ("", False),
    ],
)
def test_nesting_depth(text: str, exceeds: bool) -> None:
    assert nesting_depth_exceeds(text) is exceeds
