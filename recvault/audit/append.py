"""Appending to the audit trail's hash chains: one rule for the workers, the commands and the media route.

No lock anywhere: an entry is a create-only PUT (`If-None-Match: *`) of the chain's next
number. Two writers that pick the same number both try; S3 lets exactly one create it and
answers the other 412, which re-reads the head and tries the number after. So concurrent
writers never fork a chain (one object per number) and never lose an entry (the loser
retries). A recording's first entry — the common archive path — is tried as number 1 with
no read at all.

Before each attempt a tiny index row is written under the entry's UTC day, named after the
entry's number and hash, so the sealer finds a period's entries without listing every
chain. A row whose entry was never written, or lost the race to another writer's entry, is
stale; the sealer checks each row against the entry it names and ignores those. That is
also why the first row may be written while the object the entry describes is still being
written (`alongside`): if that write fails, the entry is not written and the row is stale.

With an audit key set (audit.process_key), each entry carries its MAC (audit.signing), so an
entry appended by anyone holding only the S3 rights is told from recvault's own.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from recvault import layout
from recvault.audit import chain, process_key
from recvault.audit.originals import versions_by_key
from recvault.audit.signing import AuditKey
from recvault.errors import AlreadyExists, TransientError
from recvault.storage.base import ObjectStore, ObjectVersion, Retention

# Writers racing on one chain each win a number within a few tries; past this something is
# wrong (a store that answers 412 to everything) and the caller's retry policy takes over.
MAX_ATTEMPTS = 50


def process_actor() -> str:
    """Who a worker or service process is in the trail: hostname:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Appended:
    """Where an entry landed and the SHA-256 of its bytes."""

    key: str
    seq: int
    sha256: str


def append(store: ObjectStore, prefix: str, chain_name: str, action: str, details: dict[str, Any],
           retention: Retention | None, when: datetime, *, actor: str | None = None,
           likely_first: bool = False, alongside: Callable[[], object] | None = None) -> Appended:
    """Append one entry to `chain_name`; returns where it landed.

    `likely_first`: try number 1 without reading the chain (a recording's archive or event
    entry), at the cost of one wasted attempt when the chain already has entries.
    `alongside`: the write the entry records (a recording's metadata document), run at the
    same time as the first index row, so the two cost one round trip; whatever it raises
    is raised here and no entry is written.
    """
    who = actor or process_actor()
    when = when.astimezone(UTC)
    if likely_first:
        seq, prev = 1, chain.genesis(chain_name)
    else:
        seq, prev = _next_after_head(store, prefix, chain_name)
    for _ in range(MAX_ATTEMPTS):
        body = _entry_bytes(chain_name, seq, prev, when, who, action, details)
        digest = chain.sha256_hex(body)
        # Locked like the entry: removing the pair would need the same rights as removing the entry.
        index_key = layout.index_key(prefix, f"{when:%Y-%m-%d}", chain_name, seq, digest)
        _together(partial(_put_row, store, index_key, retention), alongside)
        alongside = None
        key = layout.chain_key(prefix, chain_name, seq)
        try:
            store.put_bytes(key, body, content_type="application/json", retention=retention)
            return Appended(key, seq, digest)
        except AlreadyExists:
            seq, prev = _next_after_head(store, prefix, chain_name)
    raise TransientError(f"audit chain {chain_name}: no free entry number after {MAX_ATTEMPTS} attempts")


def _entry_bytes(chain_name: str, seq: int, prev: str, when: datetime, who: str, action: str,
                 details: dict[str, Any]) -> bytes:
    """The entry's bytes, with its MAC under this process's audit key when one is set (audit.process_key)."""
    unsigned = chain.entry_bytes(chain_name, seq, prev, when, who, action, details)
    key = process_key.current()
    if key is None:
        return unsigned
    return chain.entry_bytes(chain_name, seq, prev, when, who, action, details, mac=key.mac(unsigned))


def _put_row(store: ObjectStore, index_key: str, retention: Retention | None) -> None:
    """An index row, create-only like everything under audit/; one already there (a retry's) is the same row."""
    try:
        store.put_bytes(index_key, b"", content_type="application/octet-stream", retention=retention)
    except AlreadyExists:
        pass


def _together(write: Callable[[], object], alongside: Callable[[], object] | None) -> None:
    """Run `write` and `alongside` at once; `alongside`'s error first (the caller's own), then `write`'s."""
    if alongside is None:
        write()
        return
    with ThreadPoolExecutor(1, thread_name_prefix="audit-index") as pool:
        row = pool.submit(write)
        try:
            alongside()
        finally:
            row.exception()  # wait for the row either way; its error, if any, is raised below
    row.result()


def _next_after_head(store: ObjectStore, prefix: str, chain_name: str) -> tuple[int, str]:
    """(number, prev) for the entry after the chain's current head."""
    seqs = [parsed[1] for key in store.list_keys(layout.chain_prefix(prefix, chain_name))
            if (parsed := layout.parse_chain_key(prefix, key)) is not None]
    if not seqs:
        return 1, chain.genesis(chain_name)
    head = max(seqs)
    return head + 1, chain.sha256_hex(store.get_bytes(layout.chain_key(prefix, chain_name, head)))


@dataclass(frozen=True)
class ChainRead:
    """A chain as first written: each entry's oldest version, and every version or marker stacked later."""

    entries: list[chain.Entry]
    seqs: list[int]
    unreadable: list[str]
    later: list[ObjectVersion]

    @property
    def trusted(self) -> list[chain.Entry]:
        """The entries recvault wrote, what holds, erasure, the media route and `verify` act on: with
        this process's audit key (audit.process_key), those whose MAC checks or that predate the key;
        without a key, every one. An entry forged with only the S3 rights never drives an action."""
        return trusted(self.entries, process_key.current())


def trusted(entries: list[chain.Entry], key: AuditKey | None) -> list[chain.Entry]:
    """`entries` less those `key` finds no valid MAC on (all of them when there is no key)."""
    return entries if key is None else [entry for entry in entries if key.problem(entry) is None]


def read_chain_originals(store: ObjectStore, prefix: str, chain_name: str) -> ChainRead:
    """The chain as its writers made it: every entry read at its oldest version (see audit.originals).

    What a PUT or delete marker stacked over an entry later is in `later`, not in the chain.
    """
    numbered = sorted((parsed[1], found) for key, found in versions_by_key(
        store, layout.chain_prefix(prefix, chain_name)).items()
        if (parsed := layout.parse_chain_key(prefix, key)) is not None)
    entries, seqs, unreadable, later = [], [], [], []
    for seq, found in numbered:
        later += found.later
        if found.original is None:
            continue
        try:
            entries.append(chain.Entry.parse(found.key, store.get_bytes(found.key, found.original.version_id),
                                             found.original.last_modified))
            seqs.append(seq)
        except ValueError as error:
            unreadable.append(str(error))
    return ChainRead(entries, seqs, unreadable, later)


def read_chain(store: ObjectStore, prefix: str, chain_name: str) -> tuple[list[chain.Entry], list[int], list[str]]:
    """A chain's entries in number order, the numbers their keys carry, and entries that do not parse."""
    numbered = sorted((parsed[1], key) for key in store.list_keys(layout.chain_prefix(prefix, chain_name))
                      if (parsed := layout.parse_chain_key(prefix, key)) is not None)
    entries, seqs, unreadable = [], [], []
    for seq, key in numbered:
        try:
            entries.append(chain.Entry.parse(key, store.get_bytes(key)))
            seqs.append(seq)
        except ValueError as error:
            unreadable.append(str(error))
    return entries, seqs, unreadable
