"""The pure decisions of ``taskcast redrive``: which DLQ messages move, and as what."""

from __future__ import annotations

import dataclasses
import json

from taskcast.redrive import RedriveResult, describe, plan, summary
from taskcast.webhooks.format import WebhookJob

JOB = WebhookJob(task_id="t-1", tenant="acme", version=3, callback_url="https://hooks.example/secret-token",
                 payload='{"type":"task.succeeded"}', expires_at=2_000_000_000, attempt=7, not_before=1234.5)


def parked(job: WebhookJob | None, reason: str = "HTTP 500", **extra: str) -> str:
    return json.dumps({"job": dataclasses.asdict(job) if job else None, "reason": reason, **extra})


def test_a_parked_job_moves_reset_to_a_first_attempt_due_now() -> None:
    decision = plan(parked(JOB))
    assert decision.moves
    assert decision.job == dataclasses.replace(JOB, attempt=1, not_before=0.0)
    assert decision.previous_attempt == 7
    assert decision.reason == "HTTP 500"


def test_the_payload_and_webhook_id_are_unchanged_so_receivers_can_deduplicate() -> None:
    job = plan(parked(JOB)).job
    assert job is not None
    assert (job.payload, job.webhook_id) == (JOB.payload, "t-1.3")


def test_a_bare_job_moved_by_the_sqs_redrive_policy_moves_too() -> None:
    decision = plan(JOB.to_json())
    assert decision.job is not None and decision.job.attempt == 1
    assert "SQS" in decision.reason


def test_the_result_is_a_valid_retry_message() -> None:
    job = plan(parked(JOB)).job
    assert job is not None
    assert WebhookJob.from_json(job.to_json()) == job


def test_messages_without_a_job_stay() -> None:
    assert not plan(parked(None, "not a webhook job: KeyError", raw="garbage")).moves
    assert not plan("not json at all").moves
    assert not plan("[1, 2]").moves
    assert not plan(json.dumps({"job": {"task_id": "t"}, "reason": "x"})).moves
    assert not plan(json.dumps({**dataclasses.asdict(JOB), "version": 0})).moves


def test_output_names_the_webhook_but_never_the_callback_url_or_payload() -> None:
    line = describe(plan(parked(JOB)), dry_run=True)
    assert line.startswith("would move") and "t-1.3" in line and "acme" in line
    assert "secret-token" not in line and "task.succeeded" not in line
    assert describe(plan(parked(JOB)), dry_run=False).startswith("moved")
    assert describe(plan("nope"), dry_run=False).startswith("keep")


def test_summary_says_when_the_limit_stopped_the_run() -> None:
    assert "--max" in summary(RedriveResult(moved=2, examined=2, limit_reached=True), dry_run=False)
    assert "--max" not in summary(RedriveResult(moved=1, kept=1, examined=2), dry_run=True)
