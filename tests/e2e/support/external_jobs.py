"""External jobs for the end-to-end tests, named to the stack's functions by TASKCAST_JOB_MODULES."""

from taskcast.jobs import external_job

external_job("e2e-transcode", heartbeat_s=30, description="Reported on by a worker thread of the test.")
external_job("e2e-silent", heartbeat_s=2, description="Its worker never reports: it must time out.")
