"""The worker group's restart policy, with real processes standing in for `recvault worker` (fake_worker.py)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.worker import wait_for

FAKE = Path(__file__).with_name("fake_worker.py")
RUN_FOR_EVER = ["ready", None, 0]


class Group:
    """A running `WorkerGroup` of fake workers following `plan` (see fake_worker.py)."""

    def __init__(self, directory: Path, plan: dict[int, list], *, count: int = 2, first: float = 0.4,
                 longest: float = 1.6, stable: float = 60.0) -> None:
        self.directory = directory
        (directory / "plan.json").write_text(json.dumps({str(index): steps for index, steps in plan.items()}))
        self.stderr = directory / "group.log"
        with self.stderr.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(FAKE), "group", str(directory), str(count), str(first), str(longest),
                 str(stable)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def starts(self, index: int) -> list[float]:
        path = self.directory / "starts"
        lines = path.read_text().splitlines() if path.exists() else []
        return [float(line.split()[1]) for line in lines if line.split()[0] == str(index)]

    def pauses(self) -> list[float]:
        return [float(value) for value in re.findall(r"pause_seconds=([0-9.]+)", self.stderr.read_text())]

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the group still ran after {timeout} s:\n{self.stderr.read_text()[-2000:]}") from None

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def groups(tmp_path: Path):
    started: list[Group] = []

    def start(plan: dict[int, list], **policy: float) -> Group:
        directory = tmp_path / f"group-{len(started)}"
        directory.mkdir()
        started.append(Group(directory, plan, **policy))
        return started[-1]

    yield start
    for group in started:
        group.kill()


def test_a_worker_that_stops_on_an_error_after_it_consumed_is_started_again_after_doubling_pauses(groups) -> None:
    group = groups({0: [["ready", 0.2, 1]] * 4 + [RUN_FOR_EVER], 1: [RUN_FOR_EVER]})
    wait_for(lambda: len(group.starts(0)) == 5, timeout=30, what="the fifth start")
    assert group.process.poll() is None
    assert group.pauses() == [0.4, 0.8, 1.6, 1.6]  # doubling, up to the longest pause
    starts = group.starts(0)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    for gap, pause in zip(gaps, group.pauses(), strict=True):
        assert gap >= 0.2 + pause, (starts, group.pauses())
    # The second process started only once the first consumed, and was never restarted.
    [second] = group.starts(1)
    assert second >= starts[0]
    assert group.stop() == 0


def test_the_pause_is_short_again_once_a_worker_ran_long_enough(groups) -> None:
    group = groups({0: [["ready", 0.1, 1], ["ready", 0.1, 1], ["ready", 1.5, 1], RUN_FOR_EVER], 1: [RUN_FOR_EVER]},
                   stable=1.0)
    wait_for(lambda: len(group.starts(0)) == 4, timeout=30, what="the fourth start")
    assert group.pauses() == [0.4, 0.8, 0.4]
    assert group.stop() == 0


def test_a_configuration_error_at_start_stops_the_group_with_status_2(groups) -> None:
    group = groups({0: [["before", 0.2, 2]], 1: [RUN_FOR_EVER]})
    assert group.wait() == 2
    assert len(group.starts(0)) == 1 and group.starts(1) == []
    # The worker process said why; the group adds no line of its own.
    assert group.stderr.read_text().strip() == ""


def test_a_configuration_error_later_stops_the_others_and_the_group_with_status_2(groups) -> None:
    group = groups({0: [RUN_FOR_EVER], 1: [["ready", 0.5, 2]]})
    assert group.wait() == 2
    assert len(group.starts(0)) == 1 and len(group.starts(1)) == 1
    assert "stopped on its configuration" in group.stderr.read_text()


def test_a_first_start_that_fails_stops_the_group_with_its_status(groups) -> None:
    # The bucket, S3 or the broker out of reach at start: every process would meet it.
    group = groups({0: [["before", 0.2, 1]], 1: [RUN_FOR_EVER]})
    assert group.wait() == 1
    assert len(group.starts(0)) == 1 and group.starts(1) == []
    assert group.stderr.read_text().strip() == ""


def test_a_restarted_worker_that_fails_before_it_consumes_is_started_again(groups) -> None:
    # It ran, stopped, and its next start met a broker still away: not the group's start, so not fatal.
    group = groups({0: [["ready", 0.2, 1], ["before", 0.2, 1], RUN_FOR_EVER], 1: [RUN_FOR_EVER]})
    wait_for(lambda: len(group.starts(0)) == 3, timeout=30, what="the third start")
    time.sleep(0.5)
    assert group.process.poll() is None
    assert group.pauses() == [0.4, 0.8]
    assert group.stop() == 0


def test_a_stop_during_a_pause_starts_nothing_again(groups) -> None:
    group = groups({0: [["ready", 0.2, 1], RUN_FOR_EVER], 1: [RUN_FOR_EVER]}, first=30.0)
    wait_for(lambda: group.pauses() == [30.0], timeout=20, what="the pause before a restart")
    started = time.monotonic()
    assert group.stop() == 0
    assert time.monotonic() - started < 10
    assert len(group.starts(0)) == 1
