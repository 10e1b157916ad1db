"""The benchmark's /proc reader for the stack's idle CPU: parsing, the process tree, tick deltas."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.startup import ProcStat, cpu_delta, idle_cpu, parse_stat, tree


def test_stat_fields_are_counted_from_the_last_parenthesis() -> None:
    # A command name with spaces and a ")" must not shift the fields (ppid 7, utime 30, stime 12, rss 900).
    line = "42 (python -m x) y) S 7 42 42 0 -1 4194304 10 0 0 0 30 12 0 0 20 0 3 0 100 12345678 900 18446744 1"
    assert parse_stat(line) == ProcStat(pid=42, ppid=7, ticks=42, rss_pages=900)


def test_tree_holds_the_root_and_every_descendant_only() -> None:
    stats = {pid: ProcStat(pid, ppid, 0, 0) for pid, ppid in [(1, 0), (10, 1), (11, 10), (12, 11), (20, 1)]}
    assert set(tree(10, stats)) == {10, 11, 12}
    assert set(tree(99, stats)) == set()


def test_a_process_born_in_the_window_counts_from_zero() -> None:
    before = {1: ProcStat(1, 0, 100, 0)}
    after = {1: ProcStat(1, 0, 130, 0), 2: ProcStat(2, 1, 5, 0)}
    assert cpu_delta(before, after) == {1: 30, 2: 5}


def test_a_busy_child_shows_in_its_parents_tree() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # noqa: S603 - our own interpreter
    try:
        time.sleep(0.2)
        measured = idle_cpu(os.getpid(), 0.5)
    finally:
        busy.kill()
        busy.wait()
    assert measured["processes_end"] >= 2
    assert measured["by_role"]["other"]["cpu_percent"] > 20  # a spinning child, even on a loaded machine
