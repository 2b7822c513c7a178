"""Several processes appending to the same chains for hundreds of recordings: one consistent trail."""

from __future__ import annotations

import json
import multiprocessing
import random
from datetime import UTC, datetime

import pytest

from recvault import layout
from recvault.audit import chain
from recvault.audit.append import append, read_chain
from recvault.audit.verify.archive import verify_archive
from recvault.audit.write import write_system_audit
from recvault.storage.s3 import S3Store
from tests.fixtures.sealing import seal_all

PROCESSES = 4
RECORDINGS = 150
SYSTEM_ENTRIES = 10


def chains() -> list[str]:
    return [f"RE{n:032x}" for n in range(RECORDINGS)]


def writer(bucket: str, endpoint: str, number: int) -> None:
    """One process: an entry on every recording's chain (each process in its own order), some system ones."""
    store = S3Store(bucket, endpoint_url=endpoint)
    names = chains()
    random.Random(number).shuffle(names)
    for position, name in enumerate(names):
        append(store, "", name, "archived" if position % 2 else "verified", {"writer": number}, None,
               datetime.now(UTC), likely_first=True)
        if position % (RECORDINGS // SYSTEM_ENTRIES) == 0:
            write_system_audit(store, "", "policy-loaded", {"writer": number}, datetime.now(UTC))


@pytest.mark.system
def test_worker_processes_appending_at_once_leave_every_chain_whole_and_sealed(s3_store, s3_endpoint) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=writer, args=(s3_store.bucket, s3_endpoint, n)) for n in range(PROCESSES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
        assert process.exitcode == 0
    for name in chains():
        entries, seqs, unreadable = read_chain(s3_store, "", name)
        assert seqs == list(range(1, PROCESSES + 1)) and not unreadable
        assert chain.chain_problems(name, entries, seqs) == []
        assert sorted(e.details["writer"] for e in entries) == list(range(PROCESSES))
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    system = read_chain(s3_store, "", chain.system_chain(today))[0]
    assert len(system) == PROCESSES * SYSTEM_ENTRIES
    sealed = [key for s in seal_all(s3_store) for key, _ in json.loads(s3_store.get_bytes(s.key))["leaves"]
              if layout.parse_chain_key("", key)]
    assert len(sealed) == len(set(sealed)) == PROCESSES * (RECORDINGS + SYSTEM_ENTRIES)
    report = verify_archive(s3_store, "", today, today)
    # Besides those, today's chain holds the sealer's own `period-sealed` entries (of a period not sealed yet).
    recorded = sum(e.action == "period-sealed" for e in read_chain(s3_store, "", chain.system_chain(today))[0])
    assert report.findings == [] and report.totals["audit_entries"] == len(sealed) + recorded
