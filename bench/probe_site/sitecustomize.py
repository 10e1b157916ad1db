"""Loaded at start-up by every Python process that has this folder on PYTHONPATH: the benchmark puts it
there for the local stack it starts, so that the stack's AWS calls are recorded (see ``bench.probe``).
Does nothing unless ``TASKCAST_BENCH_PROBE_DIR`` is set."""

import os

if os.environ.get("TASKCAST_BENCH_PROBE_DIR"):
    from bench.probe import install_in_child

    install_in_child(os.environ["TASKCAST_BENCH_PROBE_DIR"])
