"""``taskcast redrive``: move webhook jobs from the dead-letter queue back to the retry queue.

Two kinds of message reach the webhook DLQ: ``{"job": {...}, "reason": "..."}`` parked by the webhook path
after its last attempt (``RetryQueue.dead_letter``), and a bare job moved there by SQS's redrive policy after
``maxReceiveCount`` failed receives. Either becomes a fresh job (attempt 1, no delay) so the retry handler
sends it again with the whole retry schedule; the payload, and so the ``webhook-id``, is unchanged, which
lets receivers drop a delivery they already had. Messages that hold no job stay in the DLQ.

``plan`` decides (pure); ``redrive`` does the SQS I/O with an injected client, send first then delete, so
a crash in between repeats a delivery rather than losing one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from taskcast.webhooks.format import BadJob, WebhookJob

SQS_BATCH = 10
DEFAULT_MAX = 100
# Messages looked at stay invisible to others this long; a real run finishes well within it.
VISIBILITY_S = 60


@dataclass(frozen=True)
class Plan:
    """What to do with one DLQ message: ``job`` to send again, or ``None`` and why it stays."""

    job: WebhookJob | None
    reason: str  # why it was dead-lettered (for a job) or why it stays (no job)
    previous_attempt: int = 0

    @property
    def moves(self) -> bool:
        return self.job is not None


def plan(body: str) -> Plan:
    """Read a DLQ message body and decide: the job reset to attempt 1, or why the message stays."""
    try:
        data = json.loads(body)
    except ValueError:
        return Plan(None, "not JSON")
    if not isinstance(data, dict):
        return Plan(None, "not a webhook job")
    parked = "job" in data and "reason" in data
    job_data = data.get("job") if parked else data
    if job_data is None:
        return Plan(None, f"no job in the message (dead-lettered as: {str(data.get('reason'))[:120]})")
    try:
        job = WebhookJob.from_json(json.dumps(job_data))
    except (BadJob, TypeError) as error:
        return Plan(None, str(error) or "not a webhook job")
    reason = str(data.get("reason", "")) if parked else "moved by SQS after repeated failed receives"
    return Plan(reset(job), reason, previous_attempt=job.attempt)


def reset(job: WebhookJob) -> WebhookJob:
    """The job as a first attempt, due now: the retry handler sends it at once and retries on its schedule."""
    return dataclasses.replace(job, attempt=1, not_before=0.0, from_stream=False)


def describe(message_plan: Plan, dry_run: bool) -> str:
    """One output line. Callback URLs and payloads are not printed: they may carry tokens or personal data."""
    if message_plan.job is None:
        return f"keep  {message_plan.reason}"
    job = message_plan.job
    verb = "would move" if dry_run else "moved"
    return (f"{verb}  webhook-id {job.webhook_id}  tenant {job.tenant}  after attempt {message_plan.previous_attempt}"
            f"  (dead-lettered: {message_plan.reason[:120] or 'no reason given'})")


@dataclass
class RedriveResult:
    moved: int = 0
    kept: int = 0
    examined: int = 0
    limit_reached: bool = False


def redrive(client: Any, dlq_url: str, queue_url: str, *, max_messages: int = DEFAULT_MAX, dry_run: bool = False,
            emit: Callable[[str], None] = print) -> RedriveResult:
    """Move up to ``max_messages`` jobs from ``dlq_url`` to ``queue_url`` (list them only, when ``dry_run``).

    Bounded: every round that returns messages examines at least one new message, and the run stops at an
    empty receive or once ``max_messages`` messages were examined. Messages not moved (kept, or all of them in
    a dry run) are made visible again at the end.
    """
    result = RedriveResult()
    to_release: list[dict[str, str]] = []
    seen: set[str] = set()
    try:
        for _ in range(max_messages + 1):
            wanted = min(SQS_BATCH, max_messages - result.examined)
            if wanted <= 0:
                result.limit_reached = True
                break
            response = client.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=wanted,
                                              VisibilityTimeout=VISIBILITY_S, WaitTimeSeconds=1)
            messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                break
            for message in messages:
                seen.add(message["MessageId"])
                result.examined += 1
                message_plan = plan(message.get("Body", ""))
                if message_plan.job is not None and not dry_run:
                    client.send_message(QueueUrl=queue_url, MessageBody=message_plan.job.to_json())
                    client.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                    result.moved += 1
                else:
                    to_release.append({"Id": str(len(to_release)), "ReceiptHandle": message["ReceiptHandle"]})
                    if message_plan.job is not None:
                        result.moved += 1  # would move
                    else:
                        result.kept += 1
                emit(describe(message_plan, dry_run))
    finally:
        for start in range(0, len(to_release), SQS_BATCH):
            batch = [dict(entry, VisibilityTimeout=0) for entry in to_release[start:start + SQS_BATCH]]
            client.change_message_visibility_batch(QueueUrl=dlq_url, Entries=batch)
    return result


def summary(result: RedriveResult, dry_run: bool) -> str:
    verb = "would move" if dry_run else "moved"
    text = f"{verb} {result.moved} of {result.examined} message(s); {result.kept} kept in the dead-letter queue"
    if result.limit_reached:
        text += " (stopped at --max: more may remain, run again)"
    return text + "."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskcast redrive",
        description="Move webhook jobs from the dead-letter queue back to the retry queue, attempt counter reset.")
    parser.add_argument("--dry-run", action="store_true", help="list what would move; move nothing")
    parser.add_argument("--max", type=int, default=DEFAULT_MAX, dest="max_messages",
                        help=f"examine at most this many messages (default {DEFAULT_MAX})")
    parser.add_argument("--dlq-url", help="dead-letter queue URL (default: WEBHOOK_DLQ_URL)")
    parser.add_argument("--queue-url", help="retry queue URL (default: WEBHOOK_RETRY_QUEUE_URL)")
    return parser


def main(argv: Sequence[str] | None = None, client: Any = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from taskcast import aws
    from taskcast.settings import Settings

    out, err = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    dlq_url = args.dlq_url or settings.webhook_dlq_url
    queue_url = args.queue_url or settings.webhook_retry_queue_url
    if not dlq_url or not queue_url:
        print("taskcast redrive: give --dlq-url and --queue-url (or set WEBHOOK_DLQ_URL and "
              "WEBHOOK_RETRY_QUEUE_URL; the stack output WebhookDeadLetterQueueUrl has the first).", file=err)
        return 2
    if args.max_messages < 1:
        print("taskcast redrive: --max must be at least 1.", file=err)
        return 2
    if dlq_url == queue_url:
        print("taskcast redrive: the dead-letter queue and the retry queue are the same URL.", file=err)
        return 2
    print(f"{'Dry run: listing' if args.dry_run else 'Moving'} jobs from {dlq_url} to {queue_url}", file=out)
    try:
        result = redrive(client or aws.client("sqs"), dlq_url, queue_url, max_messages=args.max_messages,
                         dry_run=args.dry_run, emit=lambda line: print(line, file=out))
    except (ClientError, BotoCoreError) as error:
        print(f"taskcast redrive: SQS refused: {error}", file=err)
        return 1
    print(summary(result, args.dry_run), file=out)
    return 0
