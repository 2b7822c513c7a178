"""The fault scenarios; each module has NAME, Size, QUICK, FULL and run(workdir, size)."""

from __future__ import annotations

from types import ModuleType

from tests.faults.scenarios import (
    attacks,
    bad_input,
    disk_full,
    hostile,
    ingest_kills,
    master_lost,
    planted_media,
    poison,
    redis_outage,
    s3_outage,
    sentinel_failover,
    twilio_faults,
    worker_kills,
)

SCENARIOS: list[ModuleType] = [worker_kills, redis_outage, s3_outage, twilio_faults, ingest_kills, bad_input,
                               attacks, disk_full, hostile, sentinel_failover,
                               poison, planted_media, master_lost]
