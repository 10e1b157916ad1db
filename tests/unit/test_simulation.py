"""The AWS-scale simulation (``bench.simulate``): its fake DynamoDB answers as moto does, its lanes keep
each task's order through failures, its connection checker catches disorder, and a small run of the
real consumer completes with every field and no violations."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from botocore.exceptions import ClientError

from bench import report
from bench.simulate import (
    EventSource,
    SimConfig,
    SimPlan,
    age_slope,
    bounded,
    run_plan,
    run_simulation,
    simulation_settings,
    table_args,
    target_check,
)
from bench.simulate_clients import FakeConnections, FakeQueues, fake_boto3, fake_connections_endpoint
from bench.simulate_dynamodb import FakeDynamoDB
from bench.simulate_latency import Latency
from bench.simulate_stream import Lane, Shard, StreamRecord, TaskWriter, lane_of
from taskcast import aws
from taskcast.models import Status, Task
from taskcast.push.fanout import is_gone, parse_stream_record
from taskcast.settings import Settings
from taskcast.store import DeliveryAttempt, DeliveryLog, Markers, SubscriptionStore, TaskStore, to_attributes

NO_LATENCY = Latency(0.0, 0.0)


def _outcome(call: Callable[[], Any]) -> Any:
    """A call's answer without its metadata, or the error (and AWS error code) it raised."""
    try:
        answer = call()
    except ClientError as error:
        return ("error", aws.error_code(error))
    except Exception as error:  # noqa: BLE001 - the store's own errors (TaskExists, ...) are answers too
        cause = error.__cause__
        return ("error", type(error).__name__, aws.error_code(cause) if isinstance(cause, ClientError) else "")
    if isinstance(answer, dict):
        answer = {key: value for key, value in answer.items() if key not in {"ResponseMetadata", "ConsumedCapacity"}}
    return answer


def _scenario(client: Any, settings: Settings) -> list[Any]:
    """The push path's stores and the raw call forms the fake claims, against ``client``; every answer."""
    tasks_table, subs_table = settings.tasks_table, settings.subscriptions_table
    tasks = TaskStore(tasks_table, client=client)
    markers = Markers(tasks_table, client=client)
    subscriptions = SubscriptionStore(subs_table, client=client)
    log = DeliveryLog(tasks_table, client=client)
    results: list[Any] = []
    task = tasks.create(Task(id="t1", tenant="acme", type="demo", created_at="2026-01-01T00:00:00Z"))
    results.append(_outcome(lambda: tasks.create(task)))  # TransactionCanceled → TaskExists
    later = Task(id="t1", tenant="acme", type="demo", status=Status.RUNNING, version=2,
                 created_at=task.created_at, expires_at=task.expires_at)
    results.append(tasks.replace(task, later).version)
    results.append(_outcome(lambda: tasks.replace(task, later)))  # a lost race
    results.append(tasks.get("t1"))
    results.append(tasks.history("t1"))
    results.append(tasks.history("t1", after_version=1))
    # FANOUT marker: absent, advanced, never backwards.
    results.append(markers.fanned_out_version("t1"))
    markers.advance_fanout("t1", 3, 99)
    markers.advance_fanout("t1", 2, 99)
    results.append(markers.fanned_out_version("t1"))
    # The consumer's batch forms: all markers in one BatchGetItem (absent ones 0), one BatchWriteItem.
    results.append(markers.fanned_out_versions(["t1", "t-unknown"]))
    markers.record_fanouts({"t1": (4, 99), "t-other": (2, 99)})
    results.append(markers.fanned_out_versions(["t1", "t-other"]))
    results.append(markers.webhook_state("t1", 1))
    log.record("t1", "acme", 99, DeliveryAttempt("w1", 1, 1, 200, "2026-01-01T00:00:01Z", "delivered"))
    markers.disable_callback("t1", "gone", 99)
    results.append(markers.webhook_state("t1", 1))
    results.append(markers.callback_disabled("t1"))
    results.append(log.list("t1"))
    # Subscriptions: the handshake, the fan-out query, the GSI, removal one by one and by connection.
    begun = [subscriptions.begin("t1", f"c{index}", "acme", now=1000.0) for index in range(3)]
    subscriptions.begin("t2", "c0", "acme", now=1000.0)
    results.append(subscriptions.confirm(begun[1], 4, now=1001.0))
    results.append(subscriptions.confirm(dataclasses.replace(begun[1], connection_id="missing"), 4, now=1001.0))
    results.append(subscriptions.confirm(begun[0], 4, now=1004.5))  # too close to the hold's end: refused
    results.append(subscriptions.for_task("t1"))
    results.append(subscriptions.get("t1", "c1"))
    results.append(sorted(subscriptions.tasks_of_connection("c0")))
    subscriptions.remove("t1", "c2")
    results.append(subscriptions.remove_connection("c0"))
    results.append(subscriptions.for_task("t1"))
    results.append(subscriptions.for_task("t2"))
    # Raw forms: paging, counting, descending order, projections, update expressions, conditions.
    key_condition = {"TableName": tasks_table, "KeyConditionExpression": "pk = :pk",
                     "ExpressionAttributeValues": to_attributes({":pk": "t1"})}
    results.append(_outcome(lambda: client.query(**key_condition, Select="COUNT")))
    first = client.query(**key_condition, Limit=2)
    results.append(_outcome(lambda: first))
    after = first["LastEvaluatedKey"]
    results.append(_outcome(lambda: client.query(**key_condition, Limit=2, ExclusiveStartKey=after)))
    results.append(_outcome(lambda: client.query(
        **key_condition, ScanIndexForward=False, ProjectionExpression="sk, #v",
        ExpressionAttributeNames={"#v": "version"})))
    results.append(_outcome(lambda: client.query(
        TableName=tasks_table, KeyConditionExpression="pk = :pk AND sk > :low",
        FilterExpression="attribute_exists(entry_json)",
        ExpressionAttributeValues=to_attributes({":pk": "t1", ":low": "S"}))))
    counter = {"TableName": tasks_table, "Key": to_attributes({"pk": "n", "sk": "COUNTER"})}
    results.append(_outcome(lambda: client.update_item(
        **counter, UpdateExpression="SET created = if_not_exists(created, :now) ADD hits :one",
        ExpressionAttributeValues=to_attributes({":now": "x", ":one": 1}), ReturnValues="ALL_NEW")))
    results.append(_outcome(lambda: client.update_item(
        **counter, UpdateExpression="SET hits = hits + :one, created = :new REMOVE old_note",
        ConditionExpression="hits BETWEEN :low AND :high AND NOT begins_with(created, :y)",
        ExpressionAttributeValues=to_attributes({":one": 1, ":new": "y", ":low": 1, ":high": 5, ":y": "y"}),
        ReturnValues="ALL_NEW")))
    # DynamoDB refuses a bare reserved word and a value the expression does not use.
    results.append(_outcome(lambda: client.update_item(**counter, UpdateExpression="REMOVE missing")))
    results.append(_outcome(lambda: client.update_item(
        **counter, UpdateExpression="REMOVE old_note", ExpressionAttributeValues=to_attributes({":x": 1}))))
    results.append(_outcome(lambda: client.delete_item(
        **counter, ConditionExpression="hits IN (:a, :b)",
        ExpressionAttributeValues=to_attributes({":a": 7, ":b": 8}))))
    results.append(_outcome(lambda: client.put_item(
        TableName=tasks_table, Item=to_attributes({"pk": "n", "sk": "COUNTER", "hits": 0}),
        ConditionExpression="attribute_not_exists(pk) OR hits <> :two",
        ExpressionAttributeValues=to_attributes({":two": 2}))))
    results.append(_outcome(lambda: client.delete_item(**counter, ReturnValues="ALL_OLD")))
    results.append(_outcome(lambda: client.get_item(**counter)))
    return results


def test_the_fake_dynamodb_answers_the_push_paths_calls_as_moto_does(dynamodb: Any, settings: Settings) -> None:
    fake = FakeDynamoDB(table_args(settings), NO_LATENCY)
    assert _scenario(fake, settings) == _scenario(dynamodb, settings)
    # The scenario went through the store's multi-item writes, not only single-item calls.
    assert fake.wire.calls["TransactWriteItems"] >= 1


def test_the_fake_dynamodb_refuses_what_it_does_not_simulate(settings: Settings) -> None:
    fake = FakeDynamoDB(table_args(settings), NO_LATENCY)
    with pytest.raises(NotImplementedError, match="scan"):
        fake.scan(TableName=settings.tasks_table)
    with pytest.raises(NotImplementedError, match="nested"):
        fake.update_item(TableName=settings.tasks_table, Key=to_attributes({"pk": "a", "sk": "b"}),
                         UpdateExpression="SET a.b = :v", ExpressionAttributeValues=to_attributes({":v": 1}))
    with pytest.raises(ClientError, match="ResourceNotFound"):
        fake.get_item(TableName="no-such-table", Key=to_attributes({"pk": "a", "sk": "b"}))


def test_every_boto3_client_built_inside_the_seam_is_the_fake() -> None:
    fake = FakeQueues(NO_LATENCY)
    aws.reset_clients()
    outside = aws.client("sqs")
    with fake_boto3({"sqs": fake}):
        assert aws.client("sqs") is fake and boto3.client("sqs") is fake
        with pytest.raises(NotImplementedError, match="lambda"):
            boto3.client("lambda")
    assert aws.client("sqs") is not fake and aws.client("sqs") is not outside  # rebuilt, real again
    aws.reset_clients()


def _record(sequence: int, task_id: str, version: int) -> StreamRecord:
    event = {"dynamodb": {"SequenceNumber": f"{sequence:021d}"}, "task": task_id, "version": version}
    return StreamRecord(sequence, task_id, version, 0.0, event)


def test_lanes_keep_each_tasks_order_through_partial_failures() -> None:
    records = [_record(n, f"task-{n % 7}", n // 7 + 1) for n in range(140)]
    lanes_of = {lane_of(record.task_id, 4) for record in records}
    assert len(lanes_of) > 1  # the tasks are spread
    assert all(lane_of(record.task_id, 4) == lane_of(record.task_id, 4) for record in records)

    handled: list[tuple[str, int]] = []
    failed_once: set[int] = set()

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        # Every 9th record fails the first time it is seen; the rest of the batch is handled as far as
        # the consumer would (it names the failed record and every later one of the same task).
        failures: list[dict[str, str]] = []
        blocked: set[str] = set()
        for raw in event["Records"]:
            number = int(raw["dynamodb"]["SequenceNumber"])
            if raw["task"] in blocked or (number % 9 == 0 and number not in failed_once):
                failed_once.add(number)
                blocked.add(raw["task"])
                failures.append({"itemIdentifier": raw["dynamodb"]["SequenceNumber"]})
            else:
                handled.append((raw["task"], raw["version"]))
        return {"batchItemFailures": failures}

    completed: list[StreamRecord] = []
    all_done = threading.Event()

    def on_completed(done: list[StreamRecord], _at: float) -> None:
        completed.extend(done)
        if len(completed) >= len(records):
            all_done.set()

    lanes = [Lane(i, invoke, on_completed, batch_size=10, max_retries=3) for i in range(4)]
    threads = [threading.Thread(target=lane.run) for lane in lanes]
    for thread in threads:
        thread.start()
    for record in records:
        lanes[lane_of(record.task_id, 4)].offer([record])
    assert all_done.wait(timeout=10)
    for lane in lanes:
        lane.stop()
    for thread in threads:
        thread.join(timeout=5)

    assert sorted(record.sequence for record in completed) == list(range(140))
    for task in {record.task_id for record in records}:
        first_times = []
        for name, version in handled:
            if name == task and version not in first_times:
                first_times.append(version)
        assert first_times == sorted(first_times) == list(range(1, 21))
    assert sum(lane.stats.retried_batches for lane in lanes) > 0
    assert sum(lane.stats.given_up for lane in lanes) == 0


def test_the_connection_checker_reports_gaps_backwards_and_gone() -> None:
    written = {("t", 1): 0.0}
    connections = FakeConnections(NO_LATENCY, lambda task, version: written.get((task, version)), clock=lambda: 0.25)
    connections.open("c", "t")

    def post(version: int) -> None:
        connections.post_to_connection(ConnectionId="c", Data=json.dumps(
            {"type": "task.status", "task_id": "t", "version": version}).encode())

    for version in (1, 1, 3, 2):
        post(version)
    assert connections.duplicates == 1
    assert connections.violations == 2
    assert "v2 missing" in connections.violation_examples[0] and "backwards" in connections.violation_examples[1]
    assert connections.lags_s == [0.25]
    assert connections.missing({"t": 4}) == ["c: v4 completed, v3 received"]
    with pytest.raises(ClientError) as gone:
        connections.post_to_connection(ConnectionId="closed", Data=b"{}")
    assert is_gone(gone.value)


def test_the_writer_writes_records_the_consumer_reads() -> None:
    shard = Shard()
    subscribed: list[tuple[str, str]] = []
    states: list[dict[str, Any]] = []
    enough = threading.Event()

    def store_state(item: dict[str, Any]) -> None:
        states.append(item)
        if len(states) >= 30:
            enough.set()

    writer = TaskWriter(shard=shard, rate=2000, tasks=3, versions=4, subscribers=2,
                        subscribe=lambda task, connection: subscribed.append((task, connection)),
                        store_state=store_state)
    thread = threading.Thread(target=writer.run)
    thread.start()
    assert enough.wait(timeout=10)
    writer.stop.set()
    thread.join(timeout=5)
    records = shard.read(0)
    versions: dict[str, list[int]] = {}
    for record in records:
        change = parse_stream_record(record.event)
        assert change is not None and change.task.id == record.task_id and change.task.version == record.version
        versions.setdefault(record.task_id, []).append(record.version)
    assert all(found == list(range(1, len(found) + 1)) for found in versions.values())
    assert [record.sequence for record in records] == list(range(1, len(records) + 1))
    assert {task for task, _ in subscribed} >= set(versions) and len(subscribed) == 2 * writer.started_tasks
    assert len(states) == len(records)


def test_the_age_trend_tells_a_growing_backlog_from_a_steady_one() -> None:
    steady = [(t / 10, 0.3 + 0.2 * ((t % 5) / 5)) for t in range(150)]
    growing = [(t / 10, 0.3 + 0.3 * t / 10) for t in range(150)]
    assert bounded(age_slope(steady, 5.0), max(age for _, age in steady))
    assert not bounded(age_slope(growing, 5.0), max(age for _, age in growing))


@pytest.mark.timeout(30)
def test_a_small_simulation_of_the_real_consumer_completes_without_violations() -> None:
    config = SimConfig(rate=100, parallelization=2, seconds=2.0, tasks=50, subscribers=2,
                       dynamodb=Latency(0.001, 0.002), post=Latency(0.002, 0.004), sqs=Latency(0.001, 0.001))
    result = run_simulation(config)
    assert result["violations"] == 0, result["violation_examples"]
    assert result["lost_records"] == 0 and result["drained"]
    # How many records a 2 s run gets through depends on the host's load; what they show does not.
    assert result["completed"] > 0 and result["written"] >= result["completed"]
    assert result["frames"] == 2 * result["completed"]  # two subscribers per task, each version once
    assert result["posts_per_change"] == 2.0
    assert result["dynamodb_calls_per_change"]["Query"] > 0
    assert isinstance(result["iterator_age_bounded"], bool) and result["sustained_changes_per_s"] > 0
    assert result["consumer_metrics"]["StatusChanges"] == result["completed"]
    for field in ("iterator_age_s", "post_lag_s", "cpu_utilisation", "wait_overshoot_ms", "capacity_per_s"):
        assert field in result


def test_the_simulation_settings_name_the_template_tables() -> None:
    settings = simulation_settings()
    names = [args["TableName"] for args in table_args(settings)]
    assert names == [settings.tasks_table, settings.subscriptions_table, settings.endpoints_table]


@pytest.mark.timeout(30)
def test_a_call_the_fakes_do_not_simulate_is_reported_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the consumer began to use an operation the fake lacks: its records fail, retry, and are lost.
    monkeypatch.delattr(FakeDynamoDB, "batch_get_item")
    config = SimConfig(rate=50, parallelization=1, seconds=1.0, tasks=5, max_retries=1,
                       dynamodb=NO_LATENCY, post=NO_LATENCY, sqs=NO_LATENCY)
    result = run_simulation(config)
    assert any("does not implement batch_get_item" in warning for warning in result["consumer_warnings"])
    assert result["lost_records"] > 0 and result["completed"] == 0


def test_a_failing_stream_writer_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(FakeDynamoDB, "update_item")  # the writer confirms subscriptions with it
    with pytest.raises(RuntimeError, match="writer failed.*update_item"):
        run_simulation(SimConfig(rate=50, seconds=0.5, tasks=2, dynamodb=NO_LATENCY, post=NO_LATENCY))


@pytest.mark.timeout(60)
def test_the_benchmark_part_reports_runs_search_table_target_and_plot(tmp_path: Path) -> None:
    from bench.__main__ import PARTS, QUICK, STACK_PARTS

    assert "simulate" in PARTS and "simulate" not in STACK_PARTS and QUICK.simulation.seconds <= 5
    fast = SimConfig(tasks=20, dynamodb=Latency(0.001, 0.002), post=Latency(0.002, 0.004))
    plan = SimPlan(rates=(1000.0,), parallelizations=(1,), seconds=1.0, search_seconds=1.0, search_steps=1)
    simulation = run_plan(plan, fast)
    assert simulation["template_parallelization"] == EventSource.from_template().parallelization
    (run,) = simulation["runs"]
    assert run["rate"] == 1000.0 and run["parallelization"] == 1 and run["violations"] == 0
    (search,) = simulation["max_sustainable"]
    assert len(search["tried"]) == 1
    table = report.simulation_tables(simulation)
    template_row = "| 1 (template) | 1,000 |" if simulation["template_parallelization"] == 1 else "| 1 | 1,000 |"
    assert template_row in table and "Highest rate with a bounded iterator age" in table
    check = target_check(simulation)
    if simulation["template_parallelization"] == 1:
        assert check is not None and isinstance(check["met"], bool) and "1,000" in check["target"]
    assert report.plot_iterator_age(simulation, tmp_path / "age.png") is not None
    assert (tmp_path / "age.png").stat().st_size > 0


def test_a_poster_sending_its_own_http_requests_reaches_the_same_fake() -> None:
    url = simulation_settings().management_url
    connections = FakeConnections(NO_LATENCY, lambda task, version: None)
    connections.open("c/1", "t")
    frame = json.dumps({"type": "task.status", "task_id": "t", "version": 1}).encode()
    with fake_connections_endpoint(connections, url):
        http = urllib3.PoolManager()
        delivered = http.request("POST", f"{url}/@connections/c%2F1", body=frame)
        gone = http.request("POST", f"{url}/@connections/closed", body=frame)
    assert delivered.status == 200 and gone.status == 410
    assert connections.frames() == 1 and connections.connections["c/1"].versions == [1]
