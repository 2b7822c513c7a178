"""Signed callbacks sent the way Twilio sends them, and a tally of how they were answered."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from recvault.simulator.callbacks import CallbackResult, CallbackSender, PreparedCallback, callback_sequence
from recvault.simulator.recordings import SimRecording

Event = tuple[str, str]  # (RecordingSid, RecordingStatus)


@dataclass
class Traffic:
    """Every callback answer seen in a scenario."""

    sent: int = 0
    accepted: set[Event] = field(default_factory=set)
    statuses: Counter = field(default_factory=Counter)

    def record(self, results: Iterable[CallbackResult]) -> None:
        for result in results:
            self.sent += 1
            self.statuses[str(result.http_status) if result.http_status else "no-answer"] += 1
            if result.ok:
                self.accepted.add((result.recording_sid, result.recording_status))

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("5"))

    def summary(self) -> str:
        return ", ".join(f"{status}×{n}" for status, n in sorted(self.statuses.items()))


async def deliver(url: str, token: str, prepared: list[PreparedCallback], *, rate: float | None = None,
                  concurrency: int = 16) -> list[CallbackResult]:
    """Send prepared callbacks to `url` as Twilio would (one retry, only on connection failure)."""
    async with CallbackSender(url, auth_token=token, concurrency=concurrency, timeout=20) as sender:
        return await sender.send_many(prepared, rate=rate)


def stream_during(url: str, token: str, prepared: list[PreparedCallback], seconds: float,
                  fault: Callable[[], object]) -> list[CallbackResult]:
    """Send the callbacks evenly over `seconds` while `fault()` runs on a thread."""

    async def both() -> list[CallbackResult]:
        sending = deliver(url, token, prepared, rate=len(prepared) / max(seconds, 0.1))
        results, _ = await asyncio.gather(sending, asyncio.to_thread(fault))
        return results

    return asyncio.run(both())


def lifecycle(sender: CallbackSender, recordings: Iterable[SimRecording], api_base: str) -> list[PreparedCallback]:
    """Each recording's in-progress and final callbacks, signed; POST and GET alternate."""
    prepared = []
    for index, rec in enumerate(recordings):
        outcome = rec.status if rec.status in ("completed", "absent", "failed") else "completed"
        method = "GET" if index % 4 == 3 else "POST"
        for params in callback_sequence(rec, outcome, api_base=api_base):
            prepared.append(sender.prepare(params, method=method))
    return prepared


def interleave(prepared: list[PreparedCallback]) -> list[PreparedCallback]:
    """Every in-progress first, then every final callback, as calls end after they start."""
    return ([p for p in prepared if p.status == "in-progress"]
            + [p for p in prepared if p.status != "in-progress"])
