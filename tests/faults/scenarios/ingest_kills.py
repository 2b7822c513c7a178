"""Scenario 5: `kill -9` of the ingest process while callbacks wait in its spool."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path

from recvault.simulator.callbacks import CallbackSender, PreparedCallback
from tests.faults.harness import Stack, StackOptions
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Traffic, deliver, lifecycle
from tests.faults.verdict import judge, settle
from tests.faults.workload import recordings

NAME = "5 ingest kill -9"
# Share of each round's callbacks Twilio sends again after ingest is back.
REPLAY_SHARE = 0.2


@dataclass(frozen=True)
class Size:
    recordings: int
    rounds: int


QUICK = Size(recordings=20, rounds=2)
FULL = Size(recordings=200, rounds=6)


def run(workdir: Path, size: Size, seed: int = 5) -> ScenarioResult:
    rng = random.Random(seed)
    result = ScenarioResult(NAME, "")
    with Stack(workdir, StackOptions()) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings)
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = lifecycle(signer, recs, stack.sim.base_url)
        traffic, spooled, refused = Traffic(), [], 0
        for n in range(size.rounds):
            batch = prepared[n::size.rounds]
            take_down = stack.redis.stop if n % 2 == 0 else stack.redis.kill  # graceful, then SIGKILL
            take_down()
            traffic.record(_send(stack, batch))
            spooled.append(stack.readyz()["spool_depth"])
            stack.ingest.kill()
            # Twilio's callbacks while ingest is down: the connection fails, nothing is accepted.
            down = _send(stack, rng.sample(batch, min(5, len(batch))))
            refused += sum(r.http_status is None for r in down)
            traffic.record(down)
            stack.redis.start()
            stack.restart_ingest()
            _wait_drained(stack)
            if n % 2 == 1:  # and once more with Redis up, killed while requests are in flight
                traffic.record(_send_and_kill(stack, rng.sample(batch, len(batch) // 2)))
                stack.restart_ingest()
            traffic.record(_send(stack, rng.sample(batch, int(len(batch) * REPLAY_SHARE))))
        settle(stack, traffic.accepted, timeout=240)
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared})
        result.server_errors = traffic.server_errors
        result.injected = f"{size.rounds + size.rounds // 2} ingest kills, {sum(spooled)} callbacks in the spool"
        result.notes.append(f"callbacks {traffic.summary()}; spool depth at each kill {spooled}; "
                            f"{refused} callbacks refused while ingest was down")
    return result


def _send(stack: Stack, prepared: list[PreparedCallback]):
    return asyncio.run(deliver(stack.callback_url, stack.token, prepared))


def _send_and_kill(stack: Stack, prepared: list[PreparedCallback]):
    """Stream the callbacks and SIGKILL ingest a moment after they start."""

    async def both():
        sending = asyncio.create_task(deliver(stack.callback_url, stack.token, prepared,
                                              rate=len(prepared) / 2.0, concurrency=8))
        await asyncio.sleep(0.7)
        await asyncio.to_thread(stack.ingest.kill)
        return await sending

    return asyncio.run(both())


def _wait_drained(stack: Stack, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while stack.readyz()["spool_depth"] and time.monotonic() < deadline:
        time.sleep(0.2)
