"""The metrics sink under concurrent invocations in one process (as in the local stack)."""

from __future__ import annotations

import json
import threading

import pytest

from taskcast.metrics import EmfMetrics

THREADS = 8
COUNTS = 500


def test_concurrent_counts_and_flushes_publish_every_count_exactly_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "taskcast-test")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    sink = EmfMetrics()
    start = threading.Barrier(THREADS)

    def invocation(index: int) -> None:
        start.wait()
        for step in range(COUNTS):
            sink.count("Things", Kind="odd" if index % 2 else "even")
            if step % 50 == 49:
                sink.flush()  # each "invocation" flushes while the others still count
        sink.flush()

    threads = [threading.Thread(target=invocation, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)

    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    documents = [json.loads(line) for line in lines]  # one whole document per line
    by_kind = {"odd": 0.0, "even": 0.0}
    for document in documents:
        by_kind[document["Kind"]] += sum(document["Things"])  # Powertools writes values as a list
    assert by_kind == {"odd": THREADS // 2 * COUNTS, "even": THREADS // 2 * COUNTS}
    assert sink.drain() == {}
