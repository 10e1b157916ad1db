"""One DynamoDB Streams batch: every task change pushed to WebSocket subscribers and handed to webhook delivery.

**Concurrency.** Order is promised per task, not across the shard. The records of one task form a chain
(``taskcast.push.batch_order``) handled in stream order, i.e. in version order; the chains of different
tasks run concurrently, up to ``TASKCAST_CONSUMER_TASK_CONCURRENCY`` at once. Within one change the
WebSocket posts run concurrently too (``WebSocketFanout.send``). A change with a callback becomes a
first-attempt ``WebhookJob``, and so it does for each enabled registered endpoint of its tenant whose
filter matches (``taskcast.webhooks.endpoints``; a disabled one's change is only logged); the jobs are
put on the delivery queue at the end, in stream order, ten per SQS call. The consumer never calls a
receiver (``taskcast.webhooks.retry`` does), so no tenant's callback can hold the WebSocket pushes back.

**Calls per batch.** For each tenant with changes: one ``Query`` of its registered endpoints. For each
task with changes: one subscriber ``Query``. For the tasks someone follows:
one ``BatchGetItem`` for all their FANOUT markers (100 a call). The chains then advance in rounds: in each,
every chain sends its next version, and one ``BatchWriteItem`` per 25 chains records those versions as
their markers before any chain sends another (``_fan_out_in_rounds``). A batch holds one to a few versions
of a task, so that is a few writes per batch instead of one per change. A task nobody follows costs the
Query only: with no subscriber there is nothing to send twice, so no marker is read or written.
The subscribers are read once for the whole chain: every record of the batch was written before the
batch was read, so a subscription made after the Query gets, from its subscribe handshake, a snapshot
at least as new as the chain's last version (``after_version``); one made before it is in the answer.

**Failures.** A record fails (it is named in ``batchItemFailures``) when a subscriber could not be
reached after the retries, when its task state is unreadable, when its task's subscribers or markers
could not be read or its marker not advanced, or when SQS refused its webhook job. A record after a
failed one of the same task is held (named too): a later version must not overtake it.

**Checkpoints and replays.** Lambda resumes a stream after a partial batch response from the LOWEST
failed sequence number: everything from there on comes again, failed or not (``delivered_again_from``).
So chains of other tasks that ran past the first failure of the batch will be replayed anyway; handling
them now is still right, because the replay is deduplicated: each chain's FANOUT marker records the last
version it fanned out, and a replayed version at or below it is not sent again (the delivery function
likewise drops a first attempt already in the delivery log). Only records that are failed or held must
be named, and exactly those are.

**Duplicate window.** A version can reach a connection twice (clients drop repeats by ``version``; a
version never goes backwards for a connection):
- when a change's fan-out fails part-way (some posts delivered, one still throttled after its retries):
  its replay posts it to all its subscribers again;
- when the invocation ends between a round's posts and its marker write (a timeout, a crash, or the
  write refused): the replay re-sends that round's version of each task concerned, the newest its
  connections have. The markers move after every round, not once at the end of the batch, so that a
  replay never re-sends a version older than one a connection already has (1, 2, 3, 2, 3, as writing
  them once per batch would).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from taskcast.metrics import STATUS_CHANGES, STREAM_RECORDS
from taskcast.push.batch_order import RecordOutcome, chains, failed_items, settle_chain
from taskcast.push.deps import PushDeps
from taskcast.push.fanout import PoisonRecord, StateChange, followed, needs_sending, parse_stream_record
from taskcast.store import Subscription, parse_item_key
from taskcast.webhooks.delivery import endpoint_jobs, job_for
from taskcast.webhooks.endpoints import Endpoint
from taskcast.webhooks.format import WebhookJob

logger = logging.getLogger(__name__)

K = TypeVar("K")

MARKER_WRITES = 25  # items per BatchWriteItem call (DynamoDB's limit)


@dataclass(frozen=True)
class Posted:
    """A version a chain sent in the current round, its FANOUT marker not yet written."""

    position: int  # in the chain's ``indices``
    version: int
    expires_at: int
    status: str


@dataclass
class Chain:
    """One task's records in this batch, and what its handling learned."""

    task_id: str
    indices: list[int]
    audience: list[Subscription] | None = None  # None: not read (no change) or unreadable
    sent_version: int = 0  # the FANOUT marker as read, then as advanced by this chain
    first_failure: int | None = None  # position in ``indices``
    next_position: int = 0  # the first record not handled yet
    posted: Posted | None = None
    finished: bool = False

    def fail_at(self, position: int) -> None:
        if self.first_failure is None or position < self.first_failure:
            self.first_failure = position


class Batch:
    """The state of one invocation: its records, one chain per task, and the webhook jobs to hand off."""

    def __init__(self, push: PushDeps, records: Sequence[dict[str, Any]]) -> None:
        self.push = push
        self.records = records
        self.sequence_numbers = [str((r.get("dynamodb") or {}).get("SequenceNumber", "")) for r in records]
        self.chains = [Chain(task_id, indices) for task_id, indices in chains(self._task_ids()).items()]
        self.changes: dict[int, StateChange | None] = {}
        self._jobs: dict[int, list[WebhookJob]] = {}  # record index → first attempts (callback, endpoints)
        self._endpoints: dict[str, list[Endpoint]] = {}  # tenant → its endpoints, read once per batch
        self._endpoints_lock = threading.Lock()
        self._lock = threading.Lock()

    def _task_ids(self) -> list[str]:
        # A record without a task key stands alone: it cannot hold, or be held by, another one.
        keyed = [parse_item_key((r.get("dynamodb") or {}).get("Keys") or {})[0] for r in self.records]
        return [task_id or f"#record-{index}" for index, task_id in enumerate(keyed)]

    def run(self, concurrency: int) -> list[tuple[int, RecordOutcome]]:
        self._parse()
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="stream-task") as pool:
            changing = [chain for chain in self.chains if self._has_change(chain)]
            self._read_audiences(pool, changing)
            self._read_markers([c for c in changing if c.audience is not None and self._followed(c)])
            self._fan_out_in_rounds(pool)
        return [outcome for chain in self.chains for outcome in settle_chain(chain.indices, chain.first_failure)]

    # --- the phases ---------------------------------------------------------------------------------

    def _parse(self) -> None:
        """Parse every record; a poison one fails, and its task's later records are held."""
        for chain in self.chains:
            for position, index in enumerate(chain.indices):
                try:
                    self.changes[index] = parse_stream_record(self.records[index])
                except PoisonRecord as error:
                    logger.error("stream record failed", extra={"task_id": chain.task_id, "error": str(error)})
                    chain.fail_at(position)
                    break

    def _has_change(self, chain: Chain) -> bool:
        return any(self.changes.get(index) is not None for index in self._reachable(chain))

    def _reachable(self, chain: Chain) -> list[int]:
        """The chain's records up to and including its first failure: the ones handled in this batch."""
        stop = len(chain.indices) if chain.first_failure is None else chain.first_failure + 1
        return chain.indices[:stop]

    def _read_audiences(self, pool: ThreadPoolExecutor, changing: list[Chain]) -> None:
        def read(chain: Chain) -> None:
            try:
                chain.audience = self.push.subscriptions.for_task(chain.task_id)
            except (BotoCoreError, ClientError) as error:
                logger.warning("subscribers unreadable", extra={"task_id": chain.task_id, "error": str(error)})
                self._fail_at_first_change(chain)

        _each(pool, read, changing)

    def _followed(self, chain: Chain) -> bool:
        tenant = self._tenant_of(chain)
        return chain.audience is not None and tenant is not None and followed(chain.audience, tenant)

    def _tenant_of(self, chain: Chain) -> str | None:
        changes = (self.changes.get(index) for index in self._reachable(chain))
        return next((change.task.tenant for change in changes if change is not None), None)

    def _read_markers(self, chains_followed: list[Chain]) -> None:
        if not chains_followed:
            return
        try:
            markers = self.push.fanout.markers.fanned_out_versions(chain.task_id for chain in chains_followed)
        except Exception as error:  # noqa: BLE001 - any failure to read fails these tasks' records, not the batch
            logger.warning("FANOUT markers unreadable", extra={"tasks": len(chains_followed), "error": str(error)})
            for chain in chains_followed:
                self._fail_at_first_change(chain)
            return
        for chain in chains_followed:
            chain.sent_version = markers[chain.task_id]

    def _fail_at_first_change(self, chain: Chain) -> None:
        chain.audience = None
        first = next(p for p, index in enumerate(chain.indices) if self.changes.get(index) is not None)
        chain.fail_at(first)

    def _fan_out_in_rounds(self, pool: ThreadPoolExecutor) -> None:
        """Each round, every unfinished chain (concurrently) goes on to the next version it has to send and
        sends it; then one ``BatchWriteItem`` per 25 of those chains records the round's versions as their
        FANOUT markers. A chain sends no version before the previous one's marker is written, so a replay
        re-sends at most one version per task, the newest a connection has."""
        active = list(self.chains)
        while active:
            _each(pool, self._step, active)
            posted = [chain for chain in active if chain.posted is not None]
            groups = [posted[i : i + MARKER_WRITES] for i in range(0, len(posted), MARKER_WRITES)]
            _each(pool, self._write_markers, groups)
            active = [chain for chain in active if not chain.finished]

    def _step(self, chain: Chain) -> None:
        """Handle the chain's records, in order, up to and including the next one it sends; ``finished``
        once it has none left or one failed."""
        follow = chain.audience is not None and self._followed(chain)
        reachable = self._reachable(chain)
        while chain.next_position < len(reachable):
            position = chain.next_position
            if position == chain.first_failure:
                break  # parse failure or unreadable subscribers/markers: already failed
            chain.next_position += 1
            change = self.changes.get(reachable[position])
            if change is None:
                continue
            try:
                jobs = self._webhook_jobs(change)
            except (BotoCoreError, ClientError) as error:
                logger.warning("webhook endpoints unreadable", extra={"task_id": chain.task_id, "error": str(error)})
                chain.fail_at(position)
                break
            if jobs:
                # Handed off even when the fan-out below fails: the replay's copy is dropped as a repeat.
                with self._lock:
                    self._jobs[reachable[position]] = jobs
            task = change.task
            if chain.audience is None or not follow or not needs_sending(chain.sent_version, task.version):
                # Nobody follows (nothing to send or remember), or a replay of a version already sent.
                self.push.metrics.count(STATUS_CHANGES, Status=str(task.status))
                continue
            try:
                report = self.push.fanout.send(change, chain.audience)
            except Exception as error:  # noqa: BLE001 - the record fails and is delivered again
                logger.warning("stream record failed", extra={"task_id": chain.task_id, "error": str(error)})
                chain.fail_at(position)
                break
            chain.audience = [s for s in chain.audience if s.connection_id not in report.gone_connections]
            chain.sent_version = task.version
            chain.posted = Posted(position, task.version, task.expires_at, str(task.status))
            return
        chain.finished = True

    def _write_markers(self, chains_posted: list[Chain]) -> None:
        versions = {c.task_id: (c.posted.version, c.posted.expires_at) for c in chains_posted if c.posted}
        try:
            self.push.fanout.markers.record_fanouts(versions)
        except Exception as error:  # noqa: BLE001 - the versions just sent fail, and are sent again (the window)
            logger.error("FANOUT markers not written", extra={"tasks": len(chains_posted), "error": str(error)})
            for chain in chains_posted:
                if chain.posted is not None:
                    chain.fail_at(chain.posted.position)
                chain.posted, chain.finished = None, True
            return
        for chain in chains_posted:
            if chain.posted is not None:
                # Counted once handled: a record that fails is counted when it comes back and succeeds.
                self.push.metrics.count(STATUS_CHANGES, Status=chain.posted.status)
            chain.posted = None

    # --- the webhook hand-off -------------------------------------------------------------------------

    def _webhook_jobs(self, change: StateChange) -> list[WebhookJob]:
        """The task's own callback's first attempt, and one per enabled registered endpoint whose filter
        matches. A disabled endpoint's change is not queued, only logged as ``disabled`` (a replay after
        re-enabling it can send it, paced)."""
        task = change.task
        callback = job_for(task)
        jobs = [callback] if callback else []
        for job in endpoint_jobs(task, self._tenant_endpoints(task.tenant)):
            if job.endpoint_id in self._enabled_ids(task.tenant):
                jobs.append(job)
            else:
                self.push.endpoint_log.record_attempt(job, outcome="disabled", error="endpoint disabled")
        return jobs

    def _enabled_ids(self, tenant: str) -> set[str]:
        return {endpoint.id for endpoint in self._tenant_endpoints(tenant) if endpoint.enabled}

    def _tenant_endpoints(self, tenant: str) -> list[Endpoint]:
        # One Query per tenant and batch (the lock keeps two chains of a tenant from both reading): a change
        # made right after an endpoint is created reaches it.
        with self._endpoints_lock:
            known = self._endpoints.get(tenant)
            if known is None:
                known = self._endpoints[tenant] = self.push.endpoints.list(tenant)
            return known

    def hand_off(self) -> list[int]:
        """Put the webhook jobs on the delivery queue, in stream order; the indices of records whose job
        SQS refused (or could not be reached for), so that the stream delivers them again."""
        if not self._jobs:
            return []
        indices = [index for index in sorted(self._jobs) for _ in self._jobs[index]]
        jobs = [job for index in sorted(self._jobs) for job in self._jobs[index]]
        try:
            refused = set(self.push.webhook_queue.enqueue_many(jobs))
        except (BotoCoreError, ClientError) as error:
            logger.error("webhook hand-off failed", extra={"error": str(error), "jobs": len(jobs)})
            refused = set(range(len(jobs)))
        # A record fails when any of its jobs was refused; the others' copies are dropped as repeats.
        failed = sorted({indices[position] for position in refused})
        for index in failed:
            logger.error("webhook hand-off failed", extra={"sequence_number": self.sequence_numbers[index]})
        return failed


def _each(pool: ThreadPoolExecutor, function: Callable[[K], None], items: Iterable[K]) -> None:
    """Run ``function`` over ``items`` in ``pool`` and wait for all; an unexpected error is re-raised."""
    for future in [pool.submit(function, item) for item in items]:
        future.result()


def handle_batch(event: dict[str, Any], context: Any, push: PushDeps) -> dict[str, Any]:
    try:
        return _handle_batch(event, push)
    finally:
        push.metrics.flush()


def _handle_batch(event: dict[str, Any], push: PushDeps) -> dict[str, Any]:
    records = list(event.get("Records") or [])
    push.metrics.count(STREAM_RECORDS, len(records))
    batch = Batch(push, records)
    try:
        outcomes = batch.run(push.settings.consumer_task_concurrency)
    finally:
        late = batch.hand_off()
    outcomes.extend((index, RecordOutcome.FAILED) for index in late)
    return {"batchItemFailures": [{"itemIdentifier": n} for n in failed_items(batch.sequence_numbers, outcomes)]}
