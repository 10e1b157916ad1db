"""Benchmarks of taskcast on the local stack: notification lag by transport, fan-out, the 40-second job."""
