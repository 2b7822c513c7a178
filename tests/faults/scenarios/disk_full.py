"""Scenario 8: the disk under ingest's spool fills up while the spool holds a backlog.

Ingest's data directory is a small tmpfs of its own. Redis goes away, callbacks spool; then
the disk is filled to the last byte and Redis comes back, so draining the backlog and
spooling new callbacks both meet a full disk; later the disk is freed. Ingest must keep
every callback (Redis takes what the spool cannot), answer no 5xx, and end drained.
Mounting a tmpfs needs root; without it the scenario fails, never skips.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from recvault.simulator.callbacks import CallbackSender
from tests.faults.harness import Stack, StackOptions
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Traffic, interleave, lifecycle, stream_during
from tests.faults.verdict import judge, settle
from tests.faults.workload import recordings

NAME = "8 disk-full spool"
# Room for the spool's database and journal with a backlog of hundreds of callbacks.
DISK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Size:
    recordings: int
    phase_seconds: float


QUICK = Size(recordings=30, phase_seconds=3)
FULL = Size(recordings=150, phase_seconds=8)


def run(workdir: Path, size: Size, seed: int = 8) -> ScenarioResult:
    if os.geteuid() != 0:
        raise RuntimeError(f"{NAME} mounts a small tmpfs to fill it and needs root")
    rng = random.Random(seed)
    result = ScenarioResult(NAME, "disk full with a backlog")
    data = Path(workdir).absolute() / "data"
    data.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(data)], check=True)
    try:
        with Stack(workdir, StackOptions()) as stack:
            recs = recordings(stack.sim.state, rng, size.recordings)
            signer = CallbackSender(stack.callback_url, auth_token=stack.token)
            prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
            third = len(prepared) // 3
            phases = [prepared[:third], prepared[third:2 * third], prepared[2 * third:]]
            filler = data / "filler"
            traffic = Traffic()

            stack.redis.stop()
            traffic.record(stream_during(stack.callback_url, stack.token, phases[0], size.phase_seconds,
                                         lambda: None))
            backlog = stack.readyz()["spool_depth"]
            fill(filler)
            stack.redis.start()
            traffic.record(stream_during(stack.callback_url, stack.token, phases[1], size.phase_seconds,
                                         lambda: None))
            filler.unlink()
            traffic.record(stream_during(stack.callback_url, stack.token, phases[2], size.phase_seconds,
                                         lambda: None))

            settle(stack, traffic.accepted, timeout=240)
            judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared})
            final = wait_drained(stack)
            if final != {"status": "ok", "broker": "up", "spool": "ok", "spool_depth": 0}:
                result.problems.append(f"ingest not drained after the disk was freed: {final}")
            failures = (stack.dir / "logs" / "ingest.log").read_text().count("spool cannot take writes")
            if not failures:
                result.problems.append("the full disk never reached the spool: the scenario tested nothing")
            result.server_errors = traffic.server_errors
            result.injected = f"disk filled with {backlog} callbacks spooled; {failures} spool write failure(s)"
            result.notes.append(f"callbacks {traffic.summary()}")
    finally:
        subprocess.run(["umount", "--lazy", str(data)], check=False)
    return result


def fill(path: Path) -> None:
    """Write zeros to `path` until the filesystem has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)


def wait_drained(stack: Stack, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    ready = stack.readyz()
    while ready.get("spool_depth") and time.monotonic() < deadline:
        time.sleep(0.5)
        ready = stack.readyz()
    return ready
