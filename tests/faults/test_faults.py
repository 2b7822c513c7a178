"""The fault scenarios: nothing lost, nothing duplicated, no 5xx, every scenario check passed.

System tier (`make test-system`): every scenario at its quick size, then at its full size
(the sizes `python -m tests.faults` reports in the table of docs/reliability.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

from tests.faults.result import ScenarioResult, markdown_table
from tests.faults.scenarios import SCENARIOS

pytestmark = pytest.mark.system


def assert_clean(result: ScenarioResult) -> None:
    """Every figure and check of a scenario, with its table row as the failure message."""
    report = markdown_table([result])
    # RECVAULT_FAULTS_REPORT=FILE collects every row and its notes, as `python -m tests.faults` prints them.
    if os.environ.get("RECVAULT_FAULTS_REPORT"):
        with open(os.environ["RECVAULT_FAULTS_REPORT"], "a") as out:
            out.write(report + "\n" + "\n".join(f"  - {note}" for note in result.notes) + "\n\n")
    assert result.accepted > 0, report
    assert result.lost == 0, report
    assert result.duplicated == 0, report
    assert result.server_errors == 0, report
    assert result.problems == [], report
    assert result.archived + result.dead_lettered == result.accepted, report


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.NAME)
def test_scenario_at_quick_size(scenario: ModuleType, tmp_path: Path) -> None:
    assert_clean(scenario.run(tmp_path, scenario.QUICK))


@pytest.mark.full
@pytest.mark.timeout(900)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.NAME)
def test_scenario_at_full_size(scenario: ModuleType, tmp_path: Path) -> None:
    assert_clean(scenario.run(tmp_path, scenario.FULL))
