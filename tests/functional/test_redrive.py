"""``taskcast redrive`` against SQS (moto): DLQ messages move to the retry queue as fresh webhook jobs."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest

from taskcast.cli import main as cli_main
from taskcast.store import DeliveryLog
from taskcast.webhooks.format import WebhookJob
from taskcast.webhooks.retry_queue import RetryQueue
from tests.support.push_env import PushEnv
from tests.support.webhook_receiver import Answer, WebhookReceiver

pytest_plugins = ["tests.support.push_fixtures"]
pytestmark = pytest.mark.timeout(60)


def job(version: int) -> WebhookJob:
    return WebhookJob(task_id="t-redrive", tenant="acme", version=version, callback_url="https://hooks.example/in",
                      payload=json.dumps({"version": version}), expires_at=2_000_000_000, attempt=8,
                      not_before=1.0)


@pytest.fixture
def queues(aws_mock: None, monkeypatch: pytest.MonkeyPatch):  # noqa: ARG001
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="webhook-dlq")["QueueUrl"]
    retry = sqs.create_queue(QueueName="webhook-retry")["QueueUrl"]
    monkeypatch.setenv("WEBHOOK_DLQ_URL", dlq)
    monkeypatch.setenv("WEBHOOK_RETRY_QUEUE_URL", retry)
    return sqs, dlq, retry


def drain(sqs, url: str) -> list[str]:  # noqa: ANN001
    bodies: list[str] = []
    for _ in range(20):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return bodies
        bodies += [m["Body"] for m in messages]
    return bodies


def test_a_dead_lettered_job_moves_and_becomes_a_valid_first_attempt(queues, capsys) -> None:  # noqa: ANN001
    sqs, dlq, retry = queues
    RetryQueue(retry, dlq, client=sqs).dead_letter(job(2), "HTTP 500")

    assert cli_main(["redrive"]) == 0

    moved = [WebhookJob.from_json(body) for body in drain(sqs, retry)]
    assert moved == [dataclasses.replace(job(2), attempt=1, not_before=0.0)]
    assert drain(sqs, dlq) == []
    output = capsys.readouterr().out
    assert "moved  webhook-id t-redrive.2" in output and "moved 1 of 1" in output


def test_a_bare_job_from_the_sqs_redrive_policy_moves_and_garbage_stays(queues, capsys) -> None:  # noqa: ANN001
    sqs, dlq, retry = queues
    sqs.send_message(QueueUrl=dlq, MessageBody=job(3).to_json())
    RetryQueue(retry, dlq, client=sqs).dead_letter(None, "not a webhook job", raw="garbage")

    assert cli_main(["redrive"]) == 0

    assert [WebhookJob.from_json(body).attempt for body in drain(sqs, retry)] == [1]
    left = [json.loads(body) for body in drain(sqs, dlq)]
    assert left == [{"job": None, "reason": "not a webhook job", "raw": "garbage"}]
    assert "1 kept" in capsys.readouterr().out


def test_dry_run_lists_and_moves_nothing(queues, capsys) -> None:  # noqa: ANN001
    sqs, dlq, retry = queues
    for version in (1, 2):
        RetryQueue(retry, dlq, client=sqs).dead_letter(job(version), "timed out")

    assert cli_main(["redrive", "--dry-run"]) == 0

    output = capsys.readouterr().out
    assert "would move  webhook-id t-redrive.1" in output and "would move  webhook-id t-redrive.2" in output
    assert drain(sqs, retry) == []
    assert len(drain(sqs, dlq)) == 2  # made visible again at once


def test_max_is_honoured(queues, capsys) -> None:  # noqa: ANN001
    sqs, dlq, retry = queues
    for version in (1, 2, 3):
        RetryQueue(retry, dlq, client=sqs).dead_letter(job(version), "HTTP 503")

    assert cli_main(["redrive", "--max", "2"]) == 0

    assert len(drain(sqs, retry)) == 2
    assert len(drain(sqs, dlq)) == 1
    assert "stopped at --max" in capsys.readouterr().out


def test_url_overrides_win_over_the_environment(queues, capsys) -> None:  # noqa: ANN001
    sqs, dlq, retry = queues
    other = sqs.create_queue(QueueName="other-retry")["QueueUrl"]
    RetryQueue(retry, dlq, client=sqs).dead_letter(job(1), "HTTP 500")

    assert cli_main(["redrive", "--dlq-url", dlq, "--queue-url", other]) == 0

    assert len(drain(sqs, other)) == 1 and drain(sqs, retry) == []
    capsys.readouterr()


def test_bad_settings_get_a_clear_error_not_a_trace(aws_mock, monkeypatch, capsys) -> None:  # noqa: ANN001, ARG001
    monkeypatch.delenv("WEBHOOK_DLQ_URL", raising=False)
    monkeypatch.delenv("WEBHOOK_RETRY_QUEUE_URL", raising=False)
    assert cli_main(["redrive"]) == 2
    assert "--dlq-url" in capsys.readouterr().err
    assert cli_main(["redrive", "--dlq-url", "http://x/q1", "--queue-url", "http://x/q2", "--max", "0"]) == 2
    assert "--max" in capsys.readouterr().err


def test_a_missing_queue_is_reported_plainly(queues, capsys) -> None:  # noqa: ANN001
    _, _, retry = queues
    missing = retry.rsplit("/", 1)[0] + "/no-such-queue"
    assert cli_main(["redrive", "--dlq-url", missing]) == 1
    assert "SQS refused" in capsys.readouterr().err


def test_a_redriven_job_is_sent_again_by_the_retry_handler_with_the_same_webhook_id(
    push_env: PushEnv, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.script("/hooks", *[Answer(500)] * 3)  # every attempt of the schedule fails, then the receiver is back
    task = push_env.create_task(callback_url=receiver.url())
    push_env.consume()
    push_env.run_retries(until=lambda: len(receiver.requests_for("/hooks")) >= 3)

    assert cli_main(["redrive"]) == 0
    assert "moved 1 of 1" in capsys.readouterr().out

    push_env.run_retries(until=lambda: len(receiver.requests_for("/hooks")) >= 4)
    delivered = [entry for entry in DeliveryLog(push_env.settings.tasks_table).list(task.id)
                 if entry["outcome"] == "delivered"]
    assert [(entry["webhook_id"], entry["attempt"]) for entry in delivered] == [(f"{task.id}.1", 1)]
    ids = {request.headers["webhook-id"] for request in receiver.requests_for("/hooks")}
    assert ids == {f"{task.id}.1"}
    assert push_env.dead_lettered() == []
