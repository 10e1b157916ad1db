"""Which functions the invoke job may run (pure): listed ones only, never the stack's own."""

from __future__ import annotations

import pytest

from taskcast.jobs.invokable import function_name, invoke_target, scrub_aws_text

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:thumbnailer"
LISTED = (ARN, "arn:aws:lambda:eu-west-1:123456789012:function:resizer:prod", "local-echo")
OWN = ("app-RestFunction-AbC", "app-WorkerFunction-XyZ")


@pytest.mark.parametrize(
    ("requested", "target"),
    [
        (ARN, ARN),
        ("thumbnailer", ARN),  # by the name of exactly one listed ARN
        ("resizer:prod", LISTED[1]),
        ("local-echo", "local-echo"),
        ("resizer", None),  # the listed entry is the alias, not the function
        ("other", None),
        ("arn:aws:lambda:eu-west-1:123456789012:function:other", None),
        ("123456789012:function:thumbnailer", None),  # partial ARNs are not entries
        ("app-RestFunction-AbC", None),
        ("arn:aws:lambda:eu-west-1:123456789012:function:app-RestFunction-AbC", None),
        ("app-WorkerFunction-XyZ:$LATEST", None),
        ("", None),
    ],
)
def test_invoke_target(requested: str, target: str | None) -> None:
    assert invoke_target(requested, LISTED, OWN) == target


def test_the_stacks_own_functions_are_refused_even_when_listed() -> None:
    own_arn = "arn:aws:lambda:eu-west-1:123456789012:function:app-RestFunction-AbC"
    assert invoke_target(own_arn, (own_arn,), OWN) is None
    assert invoke_target("app-RestFunction-AbC", (own_arn,), OWN) is None


def test_an_empty_list_allows_nothing() -> None:
    assert invoke_target("thumbnailer", (), OWN) is None


def test_a_name_shared_by_two_listed_arns_must_be_named_in_full() -> None:
    listed = (ARN, ARN.replace("eu-west-1", "us-east-1"))
    assert invoke_target("thumbnailer", listed, ()) is None
    assert invoke_target(listed[1], listed, ()) == listed[1]


def test_function_name_and_scrubbing() -> None:
    assert function_name(LISTED[1]) == "resizer"
    text = f"User: arn:aws:sts::123456789012:assumed-role/x is not authorized on {ARN} (account 123456789012)"
    scrubbed = scrub_aws_text(text)
    assert "arn:" not in scrubbed and "123456789012" not in scrubbed
