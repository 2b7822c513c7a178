"""A real archive for the operations routes: recordings archived by the worker functions into SeaweedFS."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from recvault.compliance.policy import Policy
from recvault.ingest.app import create_app
from recvault.settings import Settings
from recvault.simulator.recordings import SimRecording, new_sid
from recvault.simulator.server import SimServer
from recvault.storage.multipart import MIN_PART_SIZE
from recvault.storage.s3 import S3Store
from recvault.twilio.api import TwilioApi
from recvault.workers.dead_letters import DeadLetters
from tests.fixtures.archive import ArchiveEnv
from tests.fixtures.services import unique_bucket

# A token as `openssl rand -base64 24` makes one: 32 random base64 characters, 192 bits.
API_TOKEN = "q7Vd2kXp9LmZr4TfB8wN1cYh6GsJ0eUa"
# A retention rule the filters can find: DialVerb recordings, with a tag.
POLICY = {"default": {"retention_days": 1},
          "rule": [{"name": "dial-30d", "source": ["DialVerb"], "retention_days": 30, "tags": {"team": "support"}}]}


@dataclass
class Archived:
    """What the fixture put in the archive, to compare the routes' answers with."""

    documents: dict[str, dict] = field(default_factory=dict)  # RecordingSid → metadata document
    absent: list[str] = field(default_factory=list)
    dead_lettered: str | None = None
    recordings: dict[str, SimRecording] = field(default_factory=dict)

    def on(self, day: str) -> list[dict]:
        return [d for d in self.documents.values() if d["media_key"].split("/")[1] == f"date={day}"]


@pytest.fixture(scope="package")
def archive_env(s3_endpoint: str) -> Iterator[ArchiveEnv]:
    """The worker's archive functions, the simulator and a bucket, shared by the tests of this package."""
    account = new_sid("AC"), secrets.token_hex(16)
    store = S3Store(unique_bucket("ops-archive"), endpoint_url=s3_endpoint, part_size=MIN_PART_SIZE)
    store.ensure_bucket(create=True)
    sim = SimServer()
    sim.state.add_account(*account)
    with sim:
        host = sim.base_url.split("//", 1)[1].split(":", 1)[0]
        twilio = TwilioApi(base_url=sim.base_url, allowed_hosts=frozenset({host}), credentials=lambda _: account)
        yield ArchiveEnv(sim=sim, store=store, twilio=twilio, policy=Policy.from_dict(POLICY))
        twilio.close()


@pytest.fixture
def s3_store(archive_env: ArchiveEnv) -> S3Store:
    return archive_env.store


@pytest.fixture(scope="package")
def archive(archive_env: ArchiveEnv) -> Archived:
    """Six archived recordings over three days (two DialVerb) and one absent, once per test run."""
    sim = archive_env.sim
    now = datetime.now(UTC)
    plan = [
        (now, {"duration": 61, "channels": 2, "source": "DialVerb"}),
        (now, {"duration": 30}),
        (now, {"duration": 125, "source": "Conference", "conference_sid": "CF" + "5" * 32}),
        (now - timedelta(days=2), {"duration": 45, "source": "DialVerb"}),
        (now - timedelta(days=2), {"duration": 10}),
        (now - timedelta(days=10), {"duration": 20}),
    ]
    result = Archived()
    for start, values in plan:
        rec = sim.create_recording(start_time=start - timedelta(seconds=values["duration"] + 5), **values)
        outcome = archive_env.archive(rec, received_at=start - timedelta(seconds=3),
                                      RecordingStartTime=_rfc2822(start - timedelta(seconds=values["duration"] + 5)))
        result.documents[rec.sid] = json.loads(archive_env.store.get_bytes(outcome.key))
        result.recordings[rec.sid] = rec
    absent = sim.create_recording(status="absent", duration=0, error_code=16102)
    archive_env.archive(absent, "absent", ErrorCode="16102")
    result.absent.append(absent.sid)
    return result


@pytest.fixture
def archived(archive: Archived, redis_url: str) -> Archived:
    """The shared archive, and one dead letter in this test's Redis database."""
    letters = DeadLetters.connect(redis_url)
    lost = "RE" + secrets.token_hex(16)
    letters.add(f"{lost}:completed", "recvault.archive_event", {"params": {"RecordingSid": lost}},
                reason=f"GET …/Recordings/{lost} answered 404", error="RecordingGone", attempts=1)
    letters.close()
    archive.dead_lettered = lost
    return archive


def _rfc2822(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S +0000")


def ops_settings(redis_url: str, tmp_path, s3_store, **overrides) -> Settings:
    values = dict(twilio_auth_tokens="ingest-token-0123456789abcdef", broker_url=redis_url, data_dir=tmp_path,
                  s3_bucket=s3_store.bucket, s3_endpoint_url=s3_store.endpoint_url, api_token=API_TOKEN,
                  publish_timeout_seconds=0.5, redis_connect_timeout_seconds=0.5)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def ops_client(redis_url, tmp_path, s3_store, archived) -> AsyncIterator[TestClient]:
    """A real ingest app with the operations routes on, over the fixture's bucket."""
    async with TestClient(TestServer(create_app(ops_settings(redis_url, tmp_path, s3_store)))) as client:
        yield client


def bearer(token: str = API_TOKEN, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def browser(**headers: str) -> dict[str, str]:
    """What a browser's navigation asks for (Chromium's Accept header)."""
    return {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", **headers}
