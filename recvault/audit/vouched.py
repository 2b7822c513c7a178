"""Which versions of a recording's metadata document its audit chain vouches for. Pure.

Every write of the document is recorded by an entry naming the SHA-256 of the bytes it wrote
(`document_sha256`): the `archived` entry for the first version, then `price-updated` and
`deleted-from-twilio` for the rewrites. A document version whose hash no entry names was
not written by recvault; the latest vouched hash is what the current version must be.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recvault import layout
from recvault.audit.chain import Entry, sha256_hex

# The actions that write a recording's metadata document, each naming the bytes it wrote.
DOCUMENT_WRITES = ("archived", "price-updated", "deleted-from-twilio")


def document_sha256(document: dict[str, Any]) -> str:
    """The SHA-256 of a document as recvault stores it (one JSON line: `layout.json_line`)."""
    return sha256_hex(layout.json_line(document))


def document_hashes(entries: Sequence[Entry]) -> list[str]:
    """The SHA-256 of every document version the chain records, in the order they were written."""
    return [str(e.details["document_sha256"]) for e in entries
            if e.action in DOCUMENT_WRITES and e.details.get("document_sha256")]


def archived_entry(entries: Sequence[Entry]) -> Entry | None:
    """The entry that recorded the archive (media key, version and hash); the first if there are several."""
    return next((e for e in entries if e.action == "archived"), None)
