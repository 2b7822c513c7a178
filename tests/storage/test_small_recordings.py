"""Small recordings: one buffer of the announced size, one create-only checksummed PUT, a shared byte budget."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time

import pytest

from recvault.errors import AlreadyExists
from recvault.storage.budget import ByteBudget
from recvault.storage.multipart import MIN_PART_SIZE, MiB, gather
from recvault.storage.s3 import S3Store
from tests.storage.test_s3_store import pieces


def test_an_announced_small_recording_is_one_put_with_its_sha256(s3_store: S3Store) -> None:
    data = os.urandom(2 * MiB)
    stored = s3_store.put_stream("small/RE1.wav", pieces(data, 256 * 1024), content_type="audio/x-wav",
                                 size_hint=len(data))
    full = base64.b64encode(hashlib.sha256(data).digest()).decode()
    head = s3_store.head("small/RE1.wav")
    assert stored.checksum_sha256 == full and head is not None and head.checksum_sha256 == full
    assert stored.sha256_hex == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    assert s3_store.get_bytes("small/RE1.wav") == data
    assert s3_store.incomplete_uploads() == []  # no multipart upload was begun


def test_a_second_single_put_at_the_same_key_is_refused_and_changes_nothing(s3_store: S3Store) -> None:
    data = os.urandom(100_000)
    s3_store.put_stream("small/RE2.wav", pieces(data, 8192), content_type="audio/x-wav", size_hint=len(data))
    with pytest.raises(AlreadyExists):  # S3's 412 to If-None-Match: *
        s3_store.put_stream("small/RE2.wav", [b"x" * 10], content_type="audio/x-wav", size_hint=10)
    assert s3_store.get_bytes("small/RE2.wav") == data


def test_a_hint_smaller_than_the_content_still_stores_every_byte(s3_store: S3Store) -> None:
    data = os.urandom(MIN_PART_SIZE + 1000)  # over one part: the write goes multipart after all
    stored = s3_store.put_stream("small/RE3.wav", pieces(data, MiB), content_type="audio/x-wav", size_hint=1000)
    assert stored.size == len(data) and s3_store.get_bytes("small/RE3.wav") == data


def test_gather_yields_one_buffer_allocated_at_the_announced_size() -> None:
    chunks = [b"a" * 300, b"b" * 300, b"c" * 400]
    (whole,) = list(gather(iter(chunks), 1000))
    assert isinstance(whole, bytearray) and whole == b"".join(chunks)
    assert list(gather(iter([b"ab"]), 10)) == [bytearray(b"ab")]  # shorter than announced: trimmed


def test_gather_passes_on_what_exceeds_the_announced_size_unchanged() -> None:
    out = list(gather(iter([b"12345", b"678", b"9"]), 6))
    assert b"".join(out) == b"123456789" and len(out) > 1


def test_a_budget_holds_a_reservation_back_until_another_frees_room() -> None:
    budget = ByteBudget(10)
    entered = threading.Event()

    def second() -> None:
        with budget.reserve(6):
            entered.set()

    with budget.reserve(6):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.1)
        assert not entered.is_set() and budget.used == 6
    waiter.join(5)
    assert entered.is_set() and budget.used == 0


def test_a_reservation_over_the_whole_budget_runs_alone_rather_than_never() -> None:
    budget = ByteBudget(10)
    with budget.reserve(25):
        assert budget.used == 25
    assert budget.used == 0


def test_a_store_with_a_budget_never_holds_more_than_it_at_once(s3_endpoint: str, s3_store: S3Store) -> None:
    store = S3Store(s3_store.bucket, endpoint_url=s3_endpoint, part_size=MIN_PART_SIZE, buffer_budget=3 * MiB)
    budget = store._budget
    assert budget is not None
    seen: list[int] = []

    def watched(data: bytes):
        for piece in pieces(data, 256 * 1024):
            seen.append(budget.used)
            yield piece

    threads = [threading.Thread(target=store.put_stream, args=(f"budget/RE{n}.wav", watched(os.urandom(MiB))),
                                kwargs={"content_type": "audio/x-wav", "size_hint": MiB}) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(list(store.list_keys("budget/"))) == 8
    assert max(seen) <= 3 * MiB and budget.used == 0
