"""The soak (`make soak`): ingest and workers on their defaults under a steady stream of signed callbacks.

SOAK_SECONDS sets how long callbacks stream in (default ten minutes; 60 makes a quick check),
SOAK_RATE how many new recordings a second. Every accepted callback must be archived exactly
once, and the RSS of ingest, of the worker tree and of Redis must be flat after warm-up
(tests/soak/soak.py says precisely what that means).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.soak.soak import DEFAULT_RATE, DEFAULT_SECONDS, DRAIN_SECONDS, run

SECONDS = float(os.environ.get("SOAK_SECONDS", DEFAULT_SECONDS))
RATE = float(os.environ.get("SOAK_RATE", DEFAULT_RATE))

pytestmark = [pytest.mark.system, pytest.mark.soak]


@pytest.mark.timeout(SECONDS + DRAIN_SECONDS + 600)
def test_everything_is_archived_once_and_memory_stays_flat(tmp_path: Path) -> None:
    result = run(SECONDS, RATE)
    report = result.summary()
    print(report)
    (tmp_path / "soak.json").write_text(json.dumps(result.as_dict(), indent=2))
    assert result.accepted > 0, report
    assert result.problems == [], report
    assert result.archived_once == result.accepted, report
    for name, memory in result.memory.items():
        assert memory.flat, f"{name} memory is not flat\n{report}"
