"""An insider with GOVERNANCE bypass rewrites history; `audit verify` still reports it.

SeaweedFS runs with identities here: only then does it honour BypassGovernanceRetention (for an
identity with Admin), as AWS does for a principal with s3:BypassGovernanceRetention.
"""

from __future__ import annotations

from datetime import UTC, datetime

import botocore.exceptions
import pytest

from recvault import layout
from recvault.audit.verify.archive import verify_archive
from recvault.compliance.policy import Policy
from recvault.twilio.api import TwilioApi
from tests.fixtures.archive import ArchiveEnv
from tests.fixtures.sealing import seal_all


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
    seal_all(insider_store)  # the period holding the archive, as the sealer seals it once it is over
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

    found = {(f.kind, f.subject, f.problem) for f in verify_archive(insider_store, "", today, today).findings}
    # The archived version is gone and its `archived` entry with it; the seal still holds the entry's hash.
    assert ("missing-media", recording.sid, "the archived media version is gone") in found
    assert ("unrecorded", recording.sid, "archived, but its audit chain has no `archived` entry") in found
    assert ("altered-sealed-entry", entry, "sealed, and its original version is gone") in found
    # Nothing was stacked over the entry (the bypass removed it outright), so no rewrite is reported.
    assert not any(kind == "rewritten-entry" for kind, _, _ in found)
    twilio.close()
