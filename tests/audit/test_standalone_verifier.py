"""docs/verify_seals.py, the auditor's own check, on a copy of a real archive's audit/ folder.

The archive is written by recvault's own writers on SeaweedFS and copied as `aws s3 sync` would
(current versions, keys as paths); the script runs with the standard library alone (`-I -S`).
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import redis
from botocore.config import Config

from recvault.audit import chain
from recvault.audit.chain import DAY_SECONDS
from recvault.audit.ledger import ledger_row
from recvault.audit.ledger_flush import flush
from recvault.audit.seal import seal_through
from recvault.audit.signing import AuditKey
from recvault.audit.witness import FileWitness
from recvault.audit.write import write_system_audit
from recvault.storage.base import Retention
from recvault.workers.archive import ArchiveOptions
from tests.fixtures.archive import ArchiveEnv

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "verify_seals.py"
PREFIX = "acme/"  # a deployment's prefix: the copy starts below it, at audit/


def verify(*args: object) -> subprocess.CompletedProcess[str]:
    """The script as an auditor runs it: isolated, without site-packages, so nothing but the stdlib."""
    return subprocess.run([sys.executable, "-I", "-S", str(SCRIPT), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def accepted_yesterday(env: ArchiveEnv, redis_url: str, account_sid: str, recording_sid: str) -> None:
    """A callback ingest accepted yesterday, flushed to S3: the archive's first day is yesterday, so
    sealing it by the day gives two seals, the second chained to the first."""
    client = redis.Redis.from_url(redis_url)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    stream = f"accepted-{uuid.uuid4().hex}"
    client.xadd(stream, {"r": ledger_row(recording_sid, "completed", account_sid, yesterday.isoformat())},
                id=f"{int(yesterday.timestamp() * 1000)}-0")
    assert flush(client, stream, env.store, PREFIX, Retention()).written == 1
    client.close()


def download_audit(env: ArchiveEnv, into: Path) -> Path:
    """`aws s3 sync s3://bucket/PREFIX/audit/ into/audit/`: every current version, its key a path."""
    store = env.store
    assert store.endpoint_url is not None
    client = boto3.client("s3", endpoint_url=store.endpoint_url, region_name="us-east-1", aws_access_key_id="k",
                          aws_secret_access_key="s", config=Config(s3={"addressing_style": "path"}))
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=f"{PREFIX}audit/"):
        for listed in page.get("Contents", []):
            path = into / listed["Key"].removeprefix(PREFIX)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(client.get_object(Bucket=store.bucket, Key=listed["Key"])["Body"].read())
    client.close()
    return into


@pytest.fixture
def audit_copy(archive_env: ArchiveEnv, sim, sim_account, redis_url, tmp_path: Path) -> tuple[Path, list[str], Path]:
    """(a copy of a sealed archive's audit/ folder, its seal keys as the copy has them, the sealer's witness)."""
    archive_env.options = ArchiveOptions(prefix=PREFIX)
    recordings = [sim.create_recording(duration=duration) for duration in (1, 2)]
    for recording in recordings:
        assert archive_env.archive(recording).outcome == "archived"
    for version in ("1", "2"):  # a chain of two entries, linked
        write_system_audit(archive_env.store, PREFIX, "policy-loaded", {"version": version}, datetime.now(UTC))
    accepted_yesterday(archive_env, redis_url, sim_account.sid, recordings[0].sid)
    witness = tmp_path / "witness.jsonl"
    now = datetime.now(UTC)
    sealed = seal_through(archive_env.store, PREFIX, now, keep_days=1, now=now, period_seconds=DAY_SECONDS,
                          witness=FileWitness(witness))
    assert [seal.written for seal in sealed] == [True, True]
    copy = download_audit(archive_env, tmp_path / "copy")
    return copy, [seal.key.removeprefix(PREFIX) for seal in sealed], witness


def tampered(copy: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(copy, tmp_path / "tampered"))


def test_a_clean_copy_and_its_witness_pass(audit_copy) -> None:
    copy, seals, witness = audit_copy
    result = verify(copy, "--witness", witness)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()
    assert len(summary) == 1  # no problem lines, only the summary
    assert summary[0].startswith("2 seal(s) over ") and summary[0].endswith(": 0 problem(s)")
    sealed = sum(json.loads((copy / key).read_bytes())["count"] for key in seals)
    assert sealed >= 9 and f"over {sealed} file(s)" in summary[0]  # entries, their index rows, the ledger
    assert verify(copy / "audit").returncode == 0  # the audit/ folder itself is taken too


def test_one_byte_changed_in_an_entry_is_named(audit_copy, tmp_path) -> None:
    copy, _, _ = audit_copy
    target = tampered(copy, tmp_path)
    [folder] = (target / "audit" / "chains").glob("system-*")
    entry, after = folder / "000001.json", folder / "000002.json"
    body = entry.read_bytes()
    entry.write_bytes(body.replace(b'"version":"1"', b'"version":"7"'))
    assert len(entry.read_bytes()) == len(body) and entry.read_bytes() != body

    result = verify(target)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    key = f"{PREFIX}{entry.relative_to(target).as_posix()}"  # a leaf names the key as stored
    assert any(line.startswith(f"{key}: SHA-256 differs from the one sealed in ") for line in lines), lines
    assert f"{after.relative_to(target).as_posix()}: prev is not the SHA-256 of the entry before it" in lines
    assert lines[-1].endswith(": 2 problem(s)")


def test_a_dropped_seal_breaks_the_seal_chain_and_the_witness_says_which(audit_copy, tmp_path) -> None:
    copy, (first, second), witness = audit_copy
    target = tampered(copy, tmp_path)
    (target / first).unlink()

    result = verify(target)
    assert result.returncode == 1
    assert f"{second}: prev_seal is not the SHA-256 of the seal before it" in result.stdout
    with_witness = verify(target, "--witness", witness)
    assert with_witness.returncode == 1
    assert f"{first}: witnessed (line 1) but missing from the copy" in with_witness.stdout


def test_an_edited_seal_leaf_is_named(audit_copy, tmp_path) -> None:
    copy, (first, second), _ = audit_copy
    target = tampered(copy, tmp_path)
    seal = json.loads((target / second).read_bytes())
    leaf_key, _ = seal["leaves"][0]
    seal["leaves"][0][1] = chain.sha256_hex(b"other bytes")
    (target / second).write_bytes(json.dumps(seal, separators=(",", ":"), sort_keys=True).encode() + b"\n")

    result = verify(target)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{second}: Merkle root does not match its leaves" in lines
    assert any(line.startswith(f"{leaf_key}: SHA-256 differs from the one sealed in {second}")
               for line in lines)


def test_a_witness_record_that_differs_is_named(audit_copy, tmp_path) -> None:
    copy, (first, second), witness = audit_copy
    records = [json.loads(line) for line in witness.read_text().splitlines()]
    records[1]["sha256"] = chain.sha256_hex(b"another seal")
    records[1]["root"] = chain.sha256_hex(b"another root")
    other = tmp_path / "other-witness.jsonl"
    other.write_text("".join(json.dumps(record) + "\n" for record in records))

    result = verify(copy, "--witness", other)
    assert result.returncode == 1
    assert f"{second}: SHA-256 differs from the witness's (line 2)" in result.stdout.splitlines()
    assert f"{second}: root differs from the witness's (line 2)" in result.stdout.splitlines()
    assert first not in result.stdout


def test_a_seal_the_witness_skipped_is_named_and_one_newer_than_it_is_counted(audit_copy, tmp_path) -> None:
    copy, (first, second), witness = audit_copy
    first_line, second_line = witness.read_text().splitlines()
    skipped = tmp_path / "skipped.jsonl"
    skipped.write_text(second_line + "\n")  # the sealer wrote the first seal, the witness never saw it
    result = verify(copy, "--witness", skipped)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == f"{first}: in the copy but not in the witness, which holds later seals"

    older = tmp_path / "older.jsonl"
    older.write_text(first_line + "\n")  # a witness copied before the second seal was written
    result = verify(copy, "--witness", older)
    assert result.returncode == 0, result.stdout
    assert "1 seal(s) newer than the witness: 0 problem(s)" in result.stdout


def test_a_day_seal_of_the_older_form_chains_into_the_period_seals_after_it(tmp_path) -> None:
    entry = tmp_path / "audit" / "chains" / "system-2026-11-24" / "000001.json"
    entry.parent.mkdir(parents=True)
    entry.write_bytes(chain.entry_bytes("system-2026-11-24", 1, chain.genesis("system-2026-11-24"),
                                        datetime(2026, 11, 24, 9, tzinfo=UTC), "beat", "policy-loaded", {}))
    leaves = [("audit/chains/system-2026-11-24/000001.json", chain.sha256_hex(entry.read_bytes()))]
    day_seal = json.dumps({"date": "2026-11-24", "count": 1, "root": chain.merkle_root(leaves),
                           "prev_seal": chain.seal_genesis(), "leaves": [list(leaf) for leaf in leaves],
                           "sealed_at": "2026-11-25T00:20:00+00:00"}, separators=(",", ":"), sort_keys=True) + "\n"
    period_seal = chain.seal_bytes(datetime(2026, 11, 25, tzinfo=UTC), 3600, [], chain.sha256_hex(day_seal.encode()),
                                   datetime(2026, 11, 25, 1, 20, tzinfo=UTC), None)
    seals = tmp_path / "audit" / "seals"
    (seals / "date=2026-11-25").mkdir(parents=True)
    (seals / "date=2026-11-24.json").write_text(day_seal)
    (seals / "date=2026-11-25" / "000000.json").write_bytes(period_seal)
    result = verify(tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("2 seal(s) over 1 file(s), 1 chain(s) of 1 entries: 0 problem(s)")

    (seals / "date=2026-11-25" / "010000.json").write_bytes(period_seal)  # a key naming another period
    result = verify(tmp_path)
    assert "audit/seals/date=2026-11-25/010000.json: period_start '2026-11-25T00:00:00+00:00' is not the one " \
           "its key names" in result.stdout.splitlines()


def test_a_folder_without_audit_is_a_usage_error(tmp_path) -> None:
    result = verify(tmp_path)
    assert result.returncode == 2 and "holds no audit/ folder" in result.stderr
    assert verify().returncode == 2  # no folder at all


def test_the_script_imports_only_the_standard_library() -> None:
    tree = ast.parse(SCRIPT.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__"}
    assert imported and imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names


def test_with_the_key_file_an_entry_without_its_mac_is_named(tmp_path) -> None:
    key = AuditKey(b"an-audit-key-kept-outside-the-bucket-0123", since=datetime(2026, 11, 24, 9, tzinfo=UTC))
    folder = tmp_path / "audit" / "chains" / "RE1"
    folder.mkdir(parents=True)
    prev = chain.genesis("RE1")
    for seq, (hour, action, signed) in enumerate([(8, "archived", False), (9, "price-updated", True),
                                                  (10, "erased", False)], start=1):
        args = ("RE1", seq, prev, datetime(2026, 11, 24, hour, tzinfo=UTC), "host:1", action, {})
        body = chain.entry_bytes(*args, mac=key.mac(chain.entry_bytes(*args)) if signed else None)
        (folder / f"{seq:06d}.json").write_bytes(body)
        prev = chain.sha256_hex(body)
    key_file = tmp_path / "key"
    key_file.write_text(key.secret.decode() + "\n")
    assert verify(tmp_path).returncode == 0
    result = verify(tmp_path, "--key-file", key_file, "--since", "2026-11-24T09:00:00Z")
    assert result.returncode == 1
    assert result.stdout.splitlines()[:-1] == [
        "audit/chains/RE1/000003.json: no valid MAC under the audit key: recvault did not write this entry"]
