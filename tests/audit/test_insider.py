"""An insider with GOVERNANCE bypass rewrites history; `audit verify` still reports it.

SeaweedFS runs with identities here: only then does it honour BypassGovernanceRetention (for an
identity with Admin), as AWS does for a principal with s3:BypassGovernanceRetention.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import botocore.exceptions
import pytest

from recvault import layout
from recvault.audit import chain
from recvault.audit.seal import seal_day
from recvault.audit.verify.archive import verify_archive
from recvault.compliance.policy import Policy
from recvault.launch.services import SeaweedFS
from recvault.storage.base import Retention
from recvault.storage.multipart import MIN_PART_SIZE
from recvault.storage.s3 import LOCAL_ACCESS_KEY, S3Store
from recvault.twilio.api import TwilioApi
from tests.fixtures.archive import ArchiveEnv
from tests.fixtures.services import start_or_fail, unique_bucket


@pytest.fixture
def insider_store(tmp_path: Path) -> Iterator[S3Store]:
    access, secret = LOCAL_ACCESS_KEY
    config = tmp_path / "identities.json"
    config.write_text(json.dumps({"identities": [{
        "name": "archive-admin", "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    server = SeaweedFS(tmp_path / "weed", s3_config=config)
    start_or_fail(server)
    store = S3Store(unique_bucket("insider"), endpoint_url=server.s3_url, part_size=MIN_PART_SIZE)
    store.ensure_bucket(create=True)
    yield store
    server.stop()


@pytest.mark.system
def test_an_insider_rewriting_media_and_deleting_an_entry_with_governance_bypass_is_caught(
        insider_store, sim, sim_account) -> None:
    host = sim.base_url.split("//", 1)[1].split(":", 1)[0]
    twilio = TwilioApi(base_url=sim.base_url, allowed_hosts=frozenset({host}),
                       credentials=lambda account: (sim_account.sid, sim_account.token))
    env = ArchiveEnv(sim=sim, store=insider_store, twilio=twilio,
                     policy=Policy.from_dict({"default": {"retention_days": 30, "mode": "GOVERNANCE"}}))
    recording = sim.create_recording(duration=2)
    result = env.archive(recording)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    seal_day(insider_store, "", today, chain.seal_genesis(), Retention(), datetime.now(UTC))
    assert verify_archive(insider_store, "", today, today).findings == []

    client, bucket = insider_store._client, insider_store.bucket
    media = result.media
    with pytest.raises(botocore.exceptions.ClientError):  # the lock holds without the bypass
        client.delete_object(Bucket=bucket, Key=media.key, VersionId=media.version_id)
    # With it: the archived version is gone for good and other bytes stand in its place.
    client.delete_object(Bucket=bucket, Key=media.key, VersionId=media.version_id, BypassGovernanceRetention=True)
    client.put_object(Bucket=bucket, Key=media.key, Body=b"RIFF" + b"\0" * (media.size - 4))
    entry = layout.chain_key("", recording.sid, 1)
    version = client.head_object(Bucket=bucket, Key=entry)["VersionId"]
    client.delete_object(Bucket=bucket, Key=entry, VersionId=version, BypassGovernanceRetention=True)

    found = {(f.check, f.subject, f.problem) for f in verify_archive(insider_store, "", today, today).findings}
    assert ("object", recording.sid, "the current media version is not the one archived") in found
    assert ("object", recording.sid, "SHA-256 of the stored bytes differs from the document") in found
    assert ("seal", entry, f"sealed on {today} but no longer in the trail") in found
    assert not any(check == "delete-marker" for check, _, _ in found)  # no marker: the bypass left none
    twilio.close()
