"""The seal witness outside the bucket (a file, or a second bucket on real SeaweedFS), and verify comparing it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recvault import layout
from recvault.audit import chain
from recvault.audit.seal import seal_through
from recvault.audit.verify.trail import TrailResult, check_seals
from recvault.audit.witness import FileWitness, S3Witness, WitnessMismatch, open_witness, witness_record
from recvault.audit.write import write_audit
from recvault.errors import ConfigurationError
from recvault.settings import load_settings
from recvault.storage.base import Retention
from recvault.storage.s3 import S3Store
from tests.fixtures.sealing import seal_all
from tests.fixtures.services import unique_bucket

SID = "RE" + "c" * 32
HOUR = timedelta(hours=1)


def past_period(hours: int = 3) -> datetime:
    return chain.period_holding(datetime.now(UTC) - timedelta(hours=hours), 3600)


def days_from(start: datetime) -> list[str]:
    first, today = start.date(), datetime.now(UTC).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((today - first).days + 1)]


def witness_findings(store: S3Store, first: datetime, witness) -> list[tuple[str, str]]:
    result = TrailResult()
    check_seals(store, "", days_from(first), result, witness=witness)
    return [(f.subject, f.problem) for f in result.findings if f.kind == "witness-mismatch"]


def test_a_file_witness_keeps_one_line_per_seal_and_verify_compares_them(s3_store, tmp_path: Path) -> None:
    first = past_period()
    write_audit(s3_store, "", SID, "archived", {}, None, first + timedelta(minutes=5))
    path = tmp_path / "witness" / "seals.jsonl"
    witness = open_witness(str(path), lambda bucket: pytest.fail("a file witness needs no bucket"))
    assert isinstance(witness, FileWitness)
    sealed = seal_all(s3_store, witness=witness)

    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [witness_record(s.key, s3_store.get_bytes(s.key)) for s in sealed]
    body = s3_store.get_bytes(sealed[0].key)
    assert json.loads(lines[0]) == {"key": sealed[0].key, "period_start": json.loads(body)["period_start"],
                                    "sha256": chain.sha256_hex(body), "root": json.loads(body)["root"],
                                    "prev_seal": chain.seal_genesis()}
    assert lines[0] == json.dumps(json.loads(lines[0]), separators=(",", ":"), sort_keys=True)
    assert witness_findings(s3_store, first, witness) == []
    assert seal_all(s3_store, witness=witness) == [] and path.read_text().splitlines() == lines  # nothing twice

    # A record that differs from the seal in the bucket, and a seal the witness has no record of.
    altered = {**json.loads(lines[1]), "sha256": "0" * 64}
    path.write_text("\n".join([lines[0], json.dumps(altered), *lines[2:-1]]) + "\n")
    found = witness_findings(s3_store, first, witness)
    assert (sealed[1].key, "the seal's original differs from the witness's record") in found
    assert (sealed[-1].key, "a seal the witness has no record of") in found and len(found) == 2


def test_a_seal_placed_by_someone_else_has_no_witness_record(s3_store, tmp_path: Path) -> None:
    first = past_period()
    write_audit(s3_store, "", SID, "archived", {}, None, first - timedelta(minutes=55))
    witness = FileWitness(tmp_path / "seals.jsonl")
    [*_, head] = seal_through(s3_store, "", first - HOUR, keep_days=1, witness=witness)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    forged = chain.seal_bytes(first, 3600, [], head.sha256, datetime.now(UTC), until)
    s3_store.put_bytes(layout.seal_key("", first), forged, content_type="application/json",
                       retention=Retention(mode="COMPLIANCE", until=until))
    assert witness_findings(s3_store, first, witness) == [(layout.seal_key("", first),
                                                           "a seal the witness has no record of")]


@pytest.fixture
def witness_bucket(s3_endpoint: str) -> S3Store:
    """A second bucket with Object Lock, for the witness."""
    store = S3Store(unique_bucket("witness"), endpoint_url=s3_endpoint)
    store.ensure_bucket(create=True)
    return store


def test_an_s3_witness_keeps_a_locked_object_per_seal(s3_store, witness_bucket: S3Store, s3_endpoint: str) -> None:
    first = past_period()
    write_audit(s3_store, "", SID, "archived", {}, None, first + timedelta(minutes=5))
    witness = open_witness(f"s3://{witness_bucket.bucket}/kept/", lambda bucket: S3Store(bucket,
                                                                                         endpoint_url=s3_endpoint))
    assert isinstance(witness, S3Witness) and str(witness) == f"s3://{witness_bucket.bucket}/kept/"
    sealed = seal_through(s3_store, "", first, keep_days=1, witness=witness)

    assert list(witness_bucket.list_keys("")) == [f"kept/{s.key}" for s in sealed]
    for s in sealed:
        stored = witness_bucket.head(f"kept/{s.key}")
        seal_lock = s3_store.head(s.key).retention
        assert stored.retention.mode == "COMPLIANCE" and stored.retention.until == seal_lock.until
        assert json.loads(witness_bucket.get_bytes(f"kept/{s.key}")) == witness_record(s.key,
                                                                                       s3_store.get_bytes(s.key))
    assert witness.records() == [witness_record(s.key, s3_store.get_bytes(s.key)) for s in sealed]
    assert witness_findings(s3_store, first, witness) == []

    # A record already kept for the next seal that is not that seal: the sealer stops, verify reports it.
    next_key = layout.seal_key("", first + HOUR)
    wrong = {"key": next_key, "period_start": (first + HOUR).isoformat(), "sha256": "0" * 64, "root": "0" * 64,
             "prev_seal": sealed[-1].sha256}
    witness_bucket.put_bytes(f"kept/{next_key}", layout.json_line(wrong), content_type="application/json")
    with pytest.raises(WitnessMismatch):
        seal_through(s3_store, "", first + HOUR, keep_days=1, witness=witness)
    assert witness_findings(s3_store, first, witness) == [(next_key, "the seal's original differs from the "
                                                                     "witness's record")]


def test_a_seal_written_while_no_witness_was_set_is_recorded_by_the_next_run(s3_store, tmp_path: Path) -> None:
    first = past_period()
    write_audit(s3_store, "", SID, "archived", {}, None, first + timedelta(minutes=5))
    [*_, head] = seal_through(s3_store, "", first, keep_days=1)
    witness = FileWitness(tmp_path / "seals.jsonl")
    [after] = seal_through(s3_store, "", first + HOUR, keep_days=1, witness=witness)
    # The last seal is computed again, found the same, and recorded before anything is chained onto it.
    assert [record["key"] for record in witness.records()] == [head.key, after.key]
    assert witness_findings(s3_store, first, witness) == []  # seals before the first record are not asked for


def test_the_witness_setting_names_a_bucket_or_a_file(tmp_path: Path) -> None:
    stores: list[str] = []

    def factory(bucket: str) -> S3Store:
        stores.append(bucket)
        return S3Store(bucket, endpoint_url="http://127.0.0.1:1")

    assert open_witness("", factory) is None and open_witness("  ", factory) is None
    named = open_witness("s3://seal-copies/acme/", factory)
    assert isinstance(named, S3Witness) and named.prefix == "acme/" and stores == ["seal-copies"]
    bare = open_witness("s3://seal-copies", factory)
    assert isinstance(bare, S3Witness) and bare.prefix == ""
    kept = open_witness(str(tmp_path / "seals.jsonl"), factory)
    assert isinstance(kept, FileWitness) and kept.records() == []
    with pytest.raises(ConfigurationError):
        open_witness("s3:///acme", factory)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(seal_witness="s3:///acme")
    assert str(refused.value).startswith("RECVAULT_SEAL_WITNESS: ")
    assert load_settings().seal_witness == ""
