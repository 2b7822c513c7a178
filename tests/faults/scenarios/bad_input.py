"""Scenario 6: bad input at volume — generated requests against the real ingest process."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from recvault.settings import Settings
from recvault.simulator.callbacks import CallbackSender, callback_params
from tests.faults.fuzz import Probe, Target, forged, honest, malformed
from tests.faults.harness import Stack, StackOptions
from tests.faults.junk import junk
from tests.faults.rawhttp import send
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Event, Traffic, deliver
from tests.faults.verdict import judge, settle

NAME = "6 bad input"
MAX_BODY_BYTES = Settings.model_fields["max_body_bytes"].default
# Examples of each kind of wrong answer kept for the report.
EXAMPLES_KEPT = 3


@dataclass(frozen=True)
class Size:
    requests: int
    recordings: int = 40


QUICK = Size(requests=600)
FULL = Size(requests=10_000)


@dataclass
class FuzzTally:
    """What the generated requests got back."""

    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    families: Counter = field(default_factory=Counter)
    accepted: set[Event] = field(default_factory=set)
    signed: set[Event] = field(default_factory=set)
    wrong: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def record(self, probe: Probe, status: int | None) -> None:
        self.sent += 1
        self.statuses[str(status) if status else "no-answer"] += 1
        self.families[probe.family.split()[0]] += 1
        if probe.signed and probe.event:
            self.signed.add(probe.event)
        if status is not None and 200 <= status < 300 and probe.event:
            self.accepted.add(probe.event)
        problem = verdict(probe, status)
        if problem:
            kind = f"{probe.family}: {problem}"
            self.wrong[kind] += 1
            if len(self.examples[kind]) < EXAMPLES_KEPT:
                self.examples[kind].append(repr(probe.request.encode()[:300]))

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("5"))


def verdict(probe: Probe, status: int | None) -> str | None:
    """What is wrong with `status` as the answer to `probe`, or None."""
    if status is None:
        return None if probe.may_hang else "no answer"
    if status >= 500:
        return f"answered {status}"
    if 200 <= status < 300 and not probe.signed:
        return "accepted without a valid signature"
    if probe.expect is not None and status not in probe.expect:
        return f"answered {status}, expected {sorted(probe.expect)}"
    return None


def run(workdir: Path, size: Size, seed: int = 6) -> ScenarioResult:
    rng = random.Random(seed)
    # Accepted callbacks naming recordings Twilio does not have are dead-lettered after the grace.
    options = StackOptions(not_found_grace=8, max_retries=8)
    result = ScenarioResult(NAME, f"{size.requests} requests")
    with Stack(workdir, options) as stack:
        recs = tuple(stack.sim.state.create_recording(duration=rng.randint(1, 4), channels=rng.choice((1, 2)))
                     for _ in range(size.recordings))
        target = Target(stack.ingest_port, stack.token, stack.sim.base_url, recs, MAX_BODY_BYTES)
        tally = FuzzTally()
        fuzz(target, size.requests, tally, seed)
        result.problems += healthy_afterwards(stack, tally)
        doomed = {(sid, status) for sid, status in tally.accepted
                  if status == "completed" and stack.sim.state.get(sid) is None}
        settle(stack, tally.accepted, timeout=180)
        judge(stack, result, tally.accepted, signed=tally.signed, expect_dead=doomed)
        for kind, count in sorted(tally.wrong.items()):
            result.problems.append(f"{kind} ×{count}, e.g. {'; '.join(tally.examples[kind])}")
        result.server_errors = tally.server_errors
        result.injected = f"{tally.sent} generated requests"
        result.notes.append("families " + ", ".join(f"{k} {n}" for k, n in sorted(tally.families.items()))
                            + "; answers " + ", ".join(f"{k}×{n}" for k, n in sorted(tally.statuses.items())))
    return result


def probes(target: Target) -> st.SearchStrategy[Probe]:
    """Every family, weighted toward the ones with the most ways to go wrong."""
    return st.one_of(honest(target), malformed(target), malformed(target), forged(target), forged(target),
                     junk(target), junk(target))


def fuzz(target: Target, count: int, tally: FuzzTally, base_seed: int) -> None:
    """Send at least `count` generated requests, recording every answer."""
    rounds = 0
    while tally.sent < count:
        @settings(max_examples=count - tally.sent, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @seed(base_seed * 1000 + rounds)
        @given(probes(target))
        def probe_once(probe: Probe) -> None:
            tally.record(probe, send(target.port, probe.request))

        probe_once()
        rounds += 1


def healthy_afterwards(stack: Stack, tally: FuzzTally) -> list[str]:
    """After the storm: liveness, readiness, and a fresh callback accepted like any other."""
    problems = []
    if stack.readyz() != {"status": "ok", "broker": "up", "spool": "ok", "spool_depth": 0}:
        problems.append(f"not ready after the bad input: {stack.readyz()}")
    rec = stack.sim.state.create_recording(duration=2)
    params = callback_params(rec, "completed", api_base=stack.sim.base_url)
    signer = CallbackSender(stack.callback_url, auth_token=stack.token)
    traffic = Traffic()
    traffic.record(asyncio.run(deliver(stack.callback_url, stack.token, [signer.prepare(params)])))
    if traffic.accepted != {(rec.sid, "completed")}:
        problems.append(f"a valid callback after the bad input was answered {traffic.summary()}")
    tally.accepted |= traffic.accepted
    tally.signed.add((rec.sid, "completed"))
    return problems
