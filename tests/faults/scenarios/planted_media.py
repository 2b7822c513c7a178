"""Scenario 12: objects already at the media key before a recording is archived, with delete on.

Some keys hold something else (same size, other bytes: a bug, an insider, a restore gone
wrong); some hold the genuine media, as a worker killed before writing its document leaves
it. Delete-after-archive is on. recvault must adopt only genuine media (re-downloaded from
Twilio and compared), dead-letter the rest with the reason, and never delete a recording
from Twilio on the strength of an object it did not prove.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from recvault import layout
from recvault.simulator.callbacks import CallbackSender
from recvault.simulator.media import iter_media
from tests.faults.harness import Stack, StackOptions
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Traffic, interleave, lifecycle, stream_during
from tests.faults.verdict import judge, settle
from tests.faults.workload import recordings

NAME = "12 planted media"


@dataclass(frozen=True)
class Size:
    recordings: int
    wrong: int
    genuine: int


QUICK = Size(recordings=20, wrong=3, genuine=2)
FULL = Size(recordings=100, wrong=10, genuine=10)


def run(workdir: Path, size: Size, seed: int = 12) -> ScenarioResult:
    rng = random.Random(seed)
    result = ScenarioResult(NAME, f"{size.wrong} wrong, {size.genuine} genuine")
    with Stack(workdir, StackOptions(delete_after_archive=True)) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings, encrypted_share=0.0)
        completed = [rec for rec in recs if rec.status == "completed"]
        chosen = rng.sample(completed, size.wrong + size.genuine)
        wrong, genuine = chosen[:size.wrong], chosen[size.wrong:]
        for rec in wrong:
            body = b"".join(iter_media(rec.sid, "wav", rec.served_channels(None), rec.media_duration))
            plant(stack, rec, bytes(len(body)), channels=rec.served_channels(None))
        for rec in genuine:
            channels = rec.served_channels(None)
            plant(stack, rec, b"".join(iter_media(rec.sid, "wav", channels, rec.media_duration)), channels=channels)
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
        traffic = Traffic()
        traffic.record(stream_during(stack.callback_url, stack.token, prepared, 5, lambda: None))
        settle(stack, traffic.accepted, timeout=240)
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared},
              expect_dead={(rec.sid, "completed") for rec in wrong})
        letters = stack.dead_letters()
        for rec in wrong:
            letter = letters.get(f"{rec.sid}:completed") or {}
            if "not adopted" not in letter.get("reason", ""):
                result.problems.append(f"{rec.sid}: planted object not refused as such: {letter}")
            if rec.deleted:
                result.problems.append(f"{rec.sid}: deleted from Twilio on the strength of a planted object")
        adopted = [rec for rec in genuine if rec.deleted]
        if len(adopted) != len(genuine):
            result.problems.append(f"genuine media adopted and deleted for {len(adopted)} of {len(genuine)}")
        result.server_errors = traffic.server_errors
        result.injected = f"{size.wrong} wrong objects and {size.genuine} genuine ones at media keys"
        result.notes.append(f"callbacks {traffic.summary()}; Twilio DELETEs {len(stack.sim.deletions)}; "
                            f"genuine media adopted after re-download: {len(adopted)}")
    return result


def plant(stack: Stack, rec, body: bytes, *, channels: int) -> None:
    """Put `body` where recvault will archive this recording's media, before it does."""
    assert rec.start_time is not None
    date = rec.start_time.strftime("%Y-%m-%d")
    key = layout.media_key("", date, rec.account_sid, rec.sid, "wav")
    stack.view.put(key, body, metadata={"requested-channels": str(channels)})
