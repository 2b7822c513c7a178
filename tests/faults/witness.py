"""What a recording's archived copy must be, and whether the bucket holds it right now."""

from __future__ import annotations

import time
from functools import lru_cache

from recvault.simulator.media import media_sha256, media_size
from recvault.simulator.recordings import SimState
from tests.faults.archive_view import ArchiveView


def expected_media(state: SimState, recording_sid: str) -> tuple[int, str]:
    """(size, SHA-256) of the file recvault must archive for a simulated recording (KeyError if none)."""
    rec = state.get(recording_sid)
    if rec is None:
        raise KeyError(recording_sid)
    return _expected(rec.sid, rec.served_channels(None), rec.duration)


@lru_cache(maxsize=4096)
def _expected(sid: str, channels: int, duration: int) -> tuple[int, str]:
    return media_size(sid, "wav", channels, duration), media_sha256(sid, "wav", channels, duration)


class DeletionWitness:
    """Asked by the simulator at each Twilio DELETE: is the archived copy there and verified?"""

    def __init__(self, view: ArchiveView, state: SimState, patience: float = 30.0) -> None:
        self._view = view
        self._state = state
        self._patience = patience

    def __call__(self, recording_sid: str) -> str | None:
        """None when the copy is verified, else what is wrong with it."""
        deadline = time.monotonic() + self._patience
        while True:
            try:
                return self._inspect(recording_sid)
            except Exception as error:  # S3 may be down this very moment: look again when it is back
                if time.monotonic() > deadline:
                    return f"could not read the archive: {error!r}"
                time.sleep(0.5)

    def _inspect(self, recording_sid: str) -> str | None:
        view = self._view
        keys = [k for k in view.list_keys("metadata/") if k.endswith(f"/{recording_sid}.json")]
        if len(keys) != 1:
            return f"{len(keys)} metadata documents at deletion time"
        document = view.document(keys[0])
        size, sha256 = expected_media(self._state, recording_sid)
        if (document.get("media_size"), document.get("media_sha256")) != (size, sha256):
            return "metadata document does not describe the right media"
        if view.object_size(document["media_key"]) != size or view.sha256(document["media_key"]) != sha256:
            return "stored media does not match the recording"
        return None
