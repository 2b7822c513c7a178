"""S3Store on a real SeaweedFS: create-only writes, streaming, checksums, Object Lock, outages."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recvault.errors import (
    AlreadyExists,
    StorageRejected,
    StorageUnavailable,
    TwilioUnavailable,
)
from recvault.launch.services import SeaweedFS, free_port
from recvault.settings import Settings
from recvault.storage.base import Retention
from recvault.storage.multipart import MIN_PART_SIZE, MiB
from recvault.storage.s3 import DEFAULT_PART_SIZE, S3Store
from recvault.storage.s3_errors import s3_errors
from recvault.storage.tags import MAX_TAGS, InvalidTags, encode_tagging
from tests.fixtures.services import start_or_fail, unique_bucket

PART = MIN_PART_SIZE  # the s3_store fixture's part size
REPO = Path(__file__).resolve().parents[2]


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    """Yield `data` in chunks of `size` bytes, as a download would."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def composite(data: bytes, part_size: int) -> str:
    """S3's multipart checksum, computed independently of storage.checksums."""
    digests = b"".join(hashlib.sha256(p).digest() for p in pieces(data, part_size))
    parts = -(-len(data) // part_size)
    return f"{base64.b64encode(hashlib.sha256(digests).digest()).decode()}-{parts}"


def tags_of(store: S3Store, key: str) -> dict[str, str]:
    """Tags as S3 holds them (read straight from the client: the store has no reader for them)."""
    answer = store._client.get_object_tagging(Bucket=store.bucket, Key=key)
    return {tag["Key"]: tag["Value"] for tag in answer["TagSet"]}


def test_put_bytes_is_create_only(s3_store: S3Store) -> None:
    first = s3_store.put_bytes(
        "rec/RE1.json", b'{"sid": "RE1"}', content_type="application/json",
        metadata={"recording-sid": "RE1"}, tags={"policy": "default"},
    )  # fmt: skip
    assert first.sha256_hex == hashlib.sha256(b'{"sid": "RE1"}').hexdigest()
    assert first.version_id
    with pytest.raises(AlreadyExists):
        s3_store.put_bytes("rec/RE1.json", b"something else", content_type="application/json")
    assert s3_store.get_bytes("rec/RE1.json") == b'{"sid": "RE1"}'
    head = s3_store.head("rec/RE1.json")
    assert head is not None
    assert (head.size, head.version_id) == (14, first.version_id)
    assert head.checksum_sha256 == first.checksum_sha256
    assert head.content_type == "application/json"
    assert head.metadata == {"recording-sid": "RE1"}
    assert tags_of(s3_store, "rec/RE1.json") == {"policy": "default"}


def test_put_bytes_overwrites_only_when_asked(s3_store: S3Store) -> None:
    s3_store.put_bytes("index.json", b"1", content_type="application/json")
    second = s3_store.put_bytes(
        "index.json", b"2", content_type="application/json", create_only=False
    )
    assert s3_store.get_bytes("index.json") == b"2"
    assert s3_store.head("index.json").version_id == second.version_id  # type: ignore[union-attr]


def test_put_stream_multipart_round_trip(s3_store: S3Store) -> None:
    data = os.urandom(3 * PART + 123_457)
    # Chunks that straddle part boundaries, as HTTP reads do.
    stored = s3_store.put_stream("rec/RE2.wav", pieces(data, 1_000_003), content_type="audio/x-wav")
    assert stored.size == len(data)
    assert stored.sha256_hex == hashlib.sha256(data).hexdigest()
    assert stored.checksum_sha256 == composite(data, PART)
    assert stored.checksum_sha256.endswith("-4")  # type: ignore[union-attr]
    head = s3_store.head("rec/RE2.wav")
    assert head is not None
    assert (head.size, head.checksum_sha256, head.version_id) == (
        len(data), stored.checksum_sha256, stored.version_id,
    )  # fmt: skip
    assert head.content_type == "audio/x-wav"
    assert b"".join(s3_store.iter_bytes("rec/RE2.wav")) == data
    assert s3_store.incomplete_uploads() == []


def test_put_stream_exact_part_multiple(s3_store: S3Store) -> None:
    data = os.urandom(2 * PART)
    stored = s3_store.put_stream("two.wav", pieces(data, 3 * MiB), content_type="audio/x-wav")
    assert stored.checksum_sha256 == composite(data, PART)
    assert s3_store.get_bytes("two.wav") == data


def test_put_stream_small_object_is_one_put(s3_store: S3Store) -> None:
    data = os.urandom(PART - 1)
    stored = s3_store.put_stream("small.wav", pieces(data, 64 * 1024), content_type="audio/x-wav")
    full = base64.b64encode(hashlib.sha256(data).digest()).decode()
    # A single PUT carries a full-object checksum: no "-<parts>" suffix.
    assert stored.checksum_sha256 == full
    head = s3_store.head("small.wav")
    assert head is not None and head.checksum_sha256 == full
    assert stored.sha256_hex == hashlib.sha256(data).hexdigest()
    with pytest.raises(AlreadyExists):
        s3_store.put_stream("small.wav", [b"other"], content_type="audio/x-wav")


def test_put_stream_of_nothing(s3_store: S3Store) -> None:
    stored = s3_store.put_stream("empty.wav", iter([]), content_type="audio/x-wav")
    assert stored.size == 0
    assert stored.sha256_hex == hashlib.sha256(b"").hexdigest()
    assert s3_store.get_bytes("empty.wav") == b""


def test_put_stream_cut_mid_body_leaves_nothing(s3_store: S3Store) -> None:
    def cut_download() -> Iterator[bytes]:
        yield from pieces(os.urandom(2 * PART + 1000), MiB)
        raise TwilioUnavailable("media body cut short")

    with pytest.raises(TwilioUnavailable):
        s3_store.put_stream("rec/RE3.wav", cut_download(), content_type="audio/x-wav")
    assert s3_store.incomplete_uploads() == []
    assert s3_store.head("rec/RE3.wav") is None
    assert list(s3_store.list_keys("rec/")) == []


def test_put_stream_onto_existing_key(s3_store: S3Store) -> None:
    s3_store.put_bytes("rec/RE4.wav", b"original", content_type="audio/x-wav")
    data = os.urandom(2 * PART + 10)
    with pytest.raises(AlreadyExists):
        s3_store.put_stream("rec/RE4.wav", pieces(data, MiB), content_type="audio/x-wav")
    assert s3_store.incomplete_uploads() == []
    assert s3_store.get_bytes("rec/RE4.wav") == b"original"


def test_put_stream_aborts_a_multipart_upload_left_at_its_key(s3_store: S3Store) -> None:
    # What a writer killed mid-upload leaves behind; another key's upload is not ours to touch.
    s3_store._client.create_multipart_upload(Bucket=s3_store.bucket, Key="rec/RE5.wav", ChecksumAlgorithm="SHA256")
    other = s3_store._client.create_multipart_upload(Bucket=s3_store.bucket, Key="rec/RE5.wav.bak",
                                                     ChecksumAlgorithm="SHA256")["UploadId"]
    data = os.urandom(PART + 10)
    s3_store.put_stream("rec/RE5.wav", pieces(data, MiB), content_type="audio/x-wav")
    assert s3_store.get_bytes("rec/RE5.wav") == data
    assert s3_store.incomplete_uploads() == [("rec/RE5.wav.bak", other)]


def test_compliance_retention_on_streamed_object(s3_store: S3Store) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    retention = Retention(mode="COMPLIANCE", until=until)
    data = os.urandom(PART + 1)
    stored = s3_store.put_stream(
        "rec/RE5.wav", pieces(data, MiB), content_type="audio/x-wav", retention=retention
    )
    head = s3_store.head("rec/RE5.wav")
    assert head is not None and head.retention is not None
    assert head.retention.mode == "COMPLIANCE"
    assert head.retention.until == until
    # Nobody may delete a COMPLIANCE-locked version before its date.
    with pytest.raises(StorageRejected, match="AccessDenied"), s3_errors("delete version"):
        s3_store._client.delete_object(
            Bucket=s3_store.bucket, Key="rec/RE5.wav", VersionId=stored.version_id
        )
    assert s3_store.get_bytes("rec/RE5.wav", version_id=stored.version_id) == data


def test_legal_hold_and_retention_on_put_bytes(s3_store: S3Store) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    retention = Retention(mode="GOVERNANCE", until=until, legal_hold=True)
    s3_store.put_bytes("held.json", b"{}", content_type="application/json", retention=retention)
    head = s3_store.head("held.json")
    assert head is not None and head.retention == retention


def test_retention_needs_aware_datetime(s3_store: S3Store) -> None:
    naive = Retention(mode="COMPLIANCE", until=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        s3_store.put_bytes("x", b"x", content_type="text/plain", retention=naive)


def test_tags_within_limits_round_trip(s3_store: S3Store) -> None:
    tags = {f"k{i}": f"v {i} +-=._:/" for i in range(MAX_TAGS - 1)}
    tags["ú" * 128] = "é" * 256
    s3_store.put_bytes("tagged", b"x", content_type="text/plain", tags=tags)
    assert tags_of(s3_store, "tagged") == tags
    s3_store.set_tags("tagged", {"retention": "7y", "reviewed": "yes"})
    assert tags_of(s3_store, "tagged") == {"retention": "7y", "reviewed": "yes"}


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        ({f"k{i}": "v" for i in range(MAX_TAGS + 1)}, "at most 10"),
        ({"k" * 129: "v"}, "1-128 characters"),
        ({"": "v"}, "1-128 characters"),
        ({"k": "v" * 257}, "256"),
        ({"k": "a&b"}, "characters S3 refuses"),
        ({"k!": "v"}, "characters S3 refuses"),
        ({"aws:created": "v"}, "reserved"),
    ],
)
def test_tags_beyond_limits_are_refused(
    s3_store: S3Store, tags: dict[str, str], problem: str
) -> None:
    # SeaweedFS accepts 11 tags; AWS does not. The store checks before sending.
    with pytest.raises(InvalidTags, match=problem):
        s3_store.put_bytes("t", b"x", content_type="text/plain", tags=tags)
    with pytest.raises(InvalidTags, match=problem):
        s3_store.put_stream("t", [b"x"], content_type="text/plain", tags=tags)
    assert s3_store.head("t") is None


def test_tagging_string_encodes_space_and_plus() -> None:
    assert encode_tagging({"a b": "c+d/e"}) == "a%20b=c%2Bd%2Fe"


def test_metadata_over_two_kilobytes_is_refused(s3_store: S3Store) -> None:
    with pytest.raises(ValueError, match="2048"):
        s3_store.put_bytes("m", b"x", content_type="text/plain", metadata={"note": "x" * 2100})


def test_list_keys_in_order(s3_store: S3Store) -> None:
    for key in ["b/2", "a/1", "b/1", "c"]:
        s3_store.put_bytes(key, b"x", content_type="text/plain")
    assert list(s3_store.list_keys("b/")) == ["b/1", "b/2"]
    assert list(s3_store.list_keys("")) == ["a/1", "b/1", "b/2", "c"]


def test_incomplete_uploads_are_listed_and_aborted(s3_store: S3Store) -> None:
    started = s3_store._client.create_multipart_upload(Bucket=s3_store.bucket, Key="stuck.wav")
    assert s3_store.incomplete_uploads() == [("stuck.wav", started["UploadId"])]
    assert s3_store.incomplete_uploads("other/") == []
    s3_store.abort_upload("stuck.wav", started["UploadId"])
    assert s3_store.incomplete_uploads() == []


def test_head_of_missing_key_is_none(s3_store: S3Store) -> None:
    assert s3_store.head("nothing/here") is None


def test_get_of_missing_key_is_rejected(s3_store: S3Store) -> None:
    with pytest.raises(StorageRejected, match="NoSuchKey"):
        s3_store.get_bytes("nothing/here")


def test_ensure_bucket_refuses_to_create_unless_asked(s3_endpoint: str) -> None:
    store = S3Store(unique_bucket("missing"), endpoint_url=s3_endpoint)
    with pytest.raises(StorageRejected, match="RECVAULT_S3_BUCKET"):
        store.ensure_bucket(create=False)
    store.ensure_bucket(create=True)
    store.ensure_bucket(create=False)  # now it exists: used as it is
    assert store.object_lock_enabled is True


def test_existing_bucket_without_lock_is_used_and_reported(s3_endpoint: str) -> None:
    store = S3Store(unique_bucket("nolock"), endpoint_url=s3_endpoint)
    store._client.create_bucket(Bucket=store.bucket)  # made by an operator, without Object Lock
    store.ensure_bucket(create=False)
    assert store.object_lock_enabled is False  # the worker refuses it when its policy locks
    store.put_bytes("plain", b"x", content_type="text/plain")
    locked = Retention(mode="COMPLIANCE", until=datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(StorageRejected, match="InvalidRequest"):
        store.put_bytes("locked", b"x", content_type="text/plain", retention=locked)


def test_from_settings(s3_endpoint: str) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        s3_bucket=unique_bucket("settings"),
        s3_endpoint_url=s3_endpoint,
        s3_part_size_mib=16,
    )
    store = S3Store.from_settings(settings)
    assert (store.bucket, store.part_size) == (settings.s3_bucket, 16 * MiB)
    store.ensure_bucket(create=True)
    store.put_bytes("k", b"v", content_type="text/plain")
    assert store.get_bytes("k") == b"v"


@pytest.mark.system  # covered again by the fault suite; kept out of the fast tier
def test_outage_is_unavailable_then_recovers(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path / "weed")
    start_or_fail(server)
    try:
        # Few, short attempts so the outage is seen quickly.
        store = S3Store(
            "outage", endpoint_url=server.s3_url, connect_timeout=1, read_timeout=5, max_attempts=2
        )
        store.ensure_bucket(create=True)
        kept = os.urandom(PART + 10)
        store.put_bytes("before", b"kept", content_type="text/plain")
        store.put_stream("before.wav", pieces(kept, MiB), content_type="audio/x-wav")

        server.stop()
        with pytest.raises(StorageUnavailable):
            store.head("before")
        with pytest.raises(StorageUnavailable):
            store.put_bytes("during", b"x", content_type="text/plain")
        with pytest.raises(StorageUnavailable):
            store.put_stream("during.wav", pieces(kept, MiB), content_type="audio/x-wav")
        with pytest.raises(StorageUnavailable):
            store.ensure_bucket(create=False)

        server.start()
        assert store.get_bytes("before") == b"kept"
        assert store.get_bytes("before.wav") == kept
        store.put_bytes("after", b"x", content_type="text/plain")

        server.kill()  # a crash, not a clean stop
        with pytest.raises(StorageUnavailable):
            store.get_bytes("after")
        server.start()
        assert store.get_bytes("after") == b"x"
        assert store.get_bytes("before.wav") == kept
    finally:
        server.stop()


STREAM_200MB = """
import json, re, sys
from pathlib import Path
from recvault.storage.s3 import S3Store

def peak_rss_kib() -> int:
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

store = S3Store(sys.argv[1], endpoint_url=sys.argv[2], part_size=int(sys.argv[4]))
store.put_bytes("warm-up", b"x", content_type="text/plain")
chunk = bytes(range(256)) * 256  # 64 KiB, as a download hands them over
def chunks():
    for _ in range(int(sys.argv[3]) // len(chunk)):
        yield chunk
# Reset the peak-RSS mark: importing botocore peaks higher than its steady state, and that
# earlier peak (all ru_maxrss can report) would hide the upload's.
Path("/proc/self/clear_refs").write_text("5")
before = peak_rss_kib()
stored = store.put_stream("big.wav", chunks(), content_type="audio/x-wav")
growth = peak_rss_kib() - before
print(json.dumps({"growth_kib": growth, "size": stored.size, "sha": stored.sha256_hex}))
"""


def test_put_stream_memory_stays_bounded(s3_store: S3Store) -> None:
    total, part_size = 200 * MiB, DEFAULT_PART_SIZE
    # A fresh process, so its peak RSS measures this upload and nothing else.
    argv = [s3_store.bucket, s3_store.endpoint_url, str(total), str(part_size)]
    child = subprocess.run(
        [sys.executable, "-c", STREAM_200MB, *argv],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    expected = hashlib.sha256(bytes(range(256)) * 256 * (total // 65536)).hexdigest()
    assert (report["size"], report["sha"]) == (total, expected)
    # About 3 parts (one filling, two uploading) plus HTTP buffers; never the object.
    assert report["growth_kib"] * 1024 < 80 * MiB, f"peak RSS grew {report['growth_kib']} KiB"
    head = s3_store.head("big.wav")
    assert head is not None and head.size == total
    # SeaweedFS drops a deleted bucket's volume files at once: give the disk space back.
    s3_store._client.delete_bucket(Bucket=s3_store.bucket)


def test_failed_calls_are_reported_but_a_checks_expected_answer_is_not(s3_store: S3Store) -> None:
    seen: list[tuple[str, int]] = []
    s3_store.observe_errors(lambda operation, status: seen.append((operation, status)))
    assert s3_store.head("nothing-here") is None  # 404 to a HEAD: the answer to "is it there?"
    s3_store.put_bytes("once", b"x", content_type="text/plain")
    with pytest.raises(AlreadyExists):  # 412 to a create-only write: "already there"
        s3_store.put_bytes("once", b"y", content_type="text/plain")
    assert seen == []
    with pytest.raises(StorageRejected):
        s3_store.get_bytes("nothing-here")
    assert seen == [("GetObject", 404)]


def test_an_unreachable_endpoint_is_reported_as_no_answer_and_raised_as_unavailable() -> None:
    # Nothing listens on this port: every call fails before S3 answers.
    store = S3Store("nowhere", endpoint_url=f"http://127.0.0.1:{free_port()}", connect_timeout=1, read_timeout=1,
                    max_attempts=1)
    seen: list[tuple[str, int]] = []
    store.observe_errors(lambda operation, status: seen.append((operation, status)))
    with pytest.raises(StorageUnavailable):
        store.ensure_bucket(create=False)
    with pytest.raises(StorageUnavailable):
        store.put_bytes("during", b"x", content_type="text/plain")
    with pytest.raises(StorageUnavailable):
        store.put_stream("during.wav", pieces(b"x" * 1000, 100), content_type="audio/x-wav")
    assert ("HeadBucket", 0) in seen and ("PutObject", 0) in seen
    assert {status for _, status in seen} == {0}
