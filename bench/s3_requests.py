"""`python -m bench.s3_requests [-n 20]`: the S3 requests archiving one recording costs, by operation.

S3 bills, throttles and delays per request, so the count per archived recording is what an
audit feature that writes more records, or reads more to vouch for them, adds to each archive.
This archives N simulated completed recordings with `workers.archive.archive_event` (as the
archive task does) against a fresh SeaweedFS bucket, and counts every S3 call the store's client
makes by its operation name (botocore's `before-call` event) and every HTTP request it sends
(`before-send`: retries included). Setting up the bucket is not counted.

It imports only `recvault`, so the same file measures any release whose package is on the path.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import recvault
from recvault.compliance.policy import Policy
from recvault.events import RecordingStatusEvent
from recvault.launch.services import SeaweedFS
from recvault.simulator.recordings import SimRecording, new_sid
from recvault.simulator.server import SimServer
from recvault.storage.s3 import S3Store
from recvault.twilio.api import TwilioApi
from recvault.workers.archive import ArchiveOptions, archive_event

POLICY = {"default": {"retention_days": 30, "mode": "GOVERNANCE"}}


@dataclass
class RequestCount:
    """What one botocore client asked S3: calls by operation name, and HTTP requests sent."""

    calls: Counter[str] = field(default_factory=Counter)
    sent: int = 0

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-call.s3", self._call)
        events.register("before-send.s3", self._send)

    def _call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def _send(self, **_: Any) -> None:
        self.sent += 1


def completed_event(base_url: str, recording: SimRecording) -> RecordingStatusEvent:
    """The `completed` callback Twilio sends for `recording`."""
    url = f"{base_url}/2010-04-01/Accounts/{recording.account_sid}/Recordings/{recording.sid}"
    params: dict[str, str | list[str]] = {
        "AccountSid": recording.account_sid, "RecordingSid": recording.sid, "RecordingUrl": url,
        "RecordingStatus": "completed", "RecordingChannels": str(recording.channels),
        "RecordingSource": recording.source, "RecordingDuration": str(recording.duration), "ErrorCode": "0"}
    if recording.call_sid:
        params["CallSid"] = recording.call_sid
    return RecordingStatusEvent.from_params(params)


def measure(count: int, duration: int, workdir: Path) -> RequestCount:
    """Archive `count` recordings of `duration` seconds on a fresh SeaweedFS; the requests it took."""
    weed = SeaweedFS(workdir / "weed")
    weed.start()
    try:
        store = S3Store(f"s3-requests-{secrets.token_hex(4)}", endpoint_url=weed.s3_url)
        store.ensure_bucket(create=True)
        account, token = new_sid("AC"), secrets.token_hex(16)
        with SimServer() as sim:
            sim.state.add_account(account, token)
            host = sim.base_url.split("//", 1)[1].split(":", 1)[0]
            twilio = TwilioApi(base_url=sim.base_url, allowed_hosts=frozenset({host}),
                               credentials=lambda _: (account, token))
            policy, options = Policy.from_dict(POLICY), ArchiveOptions()
            recordings = [sim.create_recording(account_sid=account, duration=duration) for _ in range(count)]
            counted = RequestCount()
            counted.attach(store._client)
            for recording in recordings:
                outcome = archive_event(completed_event(sim.base_url, recording), received_at=datetime.now(UTC),
                                        twilio=twilio, store=store, policy=policy, options=options).outcome
                if outcome != "archived":
                    raise RuntimeError(f"{recording.sid}: {outcome}, not archived")
            twilio.close()
        return counted
    finally:
        weed.stop(timeout=2)


def table(counted: RequestCount, count: int) -> str:
    """Markdown: each operation's calls and calls per recording, then the totals."""
    lines = ["| S3 operation | calls | per recording |", "|---|---:|---:|"]
    for name, calls in sorted(counted.calls.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"| {name} | {calls} | {calls / count:.2f} |")
    total = sum(counted.calls.values())
    lines.append(f"| **all calls** | {total} | {total / count:.2f} |")
    lines.append(f"| HTTP requests sent (retries included) | {counted.sent} | {counted.sent / count:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_requests", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--recordings", type=int, default=20, help="recordings to archive (default 20)")
    parser.add_argument("--duration", type=int, default=30, help="seconds of each recording (default 30)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s3-requests-") as workdir:
        counted = measure(args.recordings, args.duration, Path(workdir))
    print(f"recvault {getattr(recvault, '__version__', '?')} ({Path(recvault.__file__).parent}): "
          f"{args.recordings} recordings of {args.duration} s archived\n")
    print(table(counted, args.recordings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
