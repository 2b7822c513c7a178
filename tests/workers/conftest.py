"""Worker fixtures: the archive functions wired to the real simulator and the real SeaweedFS."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from recvault.events import RecordingStatusEvent
from recvault.simulator.recordings import SimRecording
from recvault.storage.s3 import S3Store
from recvault.workers.archive import ArchiveOptions, ArchiveResult, archive_event
from recvault.workers.policy import Policy
from recvault.workers.refresh import RefreshTarget, refresh_recording
from recvault.workers.twilio_api import TwilioApi
from tests.fixtures.services import unique_bucket


@dataclass
class ArchiveEnv:
    """Everything `archive_event` needs, pointed at real peers."""

    sim: object
    store: S3Store
    twilio: TwilioApi
    policy: Policy = field(default_factory=lambda: Policy.from_dict({"default": {"retention_days": 1}}))
    options: ArchiveOptions = field(default_factory=ArchiveOptions)

    def event(self, recording: SimRecording, status: str = "completed", **extra: str) -> RecordingStatusEvent:
        url = f"{self.sim.base_url}/2010-04-01/Accounts/{recording.account_sid}/Recordings/{recording.sid}"
        params = {
            "AccountSid": recording.account_sid, "RecordingSid": recording.sid, "RecordingUrl": url,
            "RecordingStatus": status, "RecordingChannels": str(recording.channels),
            "RecordingSource": recording.source, "ErrorCode": "0",
        }
        if recording.call_sid:
            params["CallSid"] = recording.call_sid
        if recording.conference_sid:
            params["ConferenceSid"] = recording.conference_sid
        if status == "completed":
            params["RecordingDuration"] = str(recording.duration)
        params.update(extra)
        return RecordingStatusEvent.from_params(params)

    def refresh(self, recording: SimRecording, result: ArchiveResult, *, final: bool = False) -> bool:
        """The price-refresh step for an archived recording, as its task runs it."""
        return refresh_recording(
            RefreshTarget.for_document(recording.account_sid, recording.sid, result.key),
            twilio=self.twilio, store=self.store, prefix=self.options.prefix,
            delete_after_archive=self.options.delete_after_archive, now=lambda: datetime.now(UTC), final=final)

    def archive(self, recording: SimRecording, status: str = "completed", *, received_at=None,
                **extra: str) -> ArchiveResult:
        return archive_event(
            self.event(recording, status, **extra),
            received_at=received_at or datetime.now(UTC),
            twilio=self.twilio, store=self.store, policy=self.policy, options=self.options,
        )


@pytest.fixture
def archive_env(sim, sim_account, s3_store) -> ArchiveEnv:
    host = sim.base_url.split("//", 1)[1].split(":", 1)[0]
    twilio = TwilioApi(base_url=sim.base_url, allowed_hosts=frozenset({host}),
                       credentials=lambda account: (sim_account.sid, sim_account.token))
    yield ArchiveEnv(sim=sim, store=s3_store, twilio=twilio)
    twilio.close()


@pytest.fixture(scope="module")
def vault(s3_endpoint: str, request: pytest.FixtureRequest) -> S3Store:
    """One Object Lock bucket per test module (a new bucket costs SeaweedFS most of a second)."""
    store = S3Store(unique_bucket(request.module.__name__), endpoint_url=s3_endpoint)
    store.ensure_bucket(create=True)
    assert store.object_lock_enabled
    return store


@pytest.fixture
def prefix() -> str:
    """A prefix of this test's own in the module's bucket: what one deployment sees."""
    return f"t-{uuid.uuid4().hex[:12]}/"
