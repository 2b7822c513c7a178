"""A recording's metadata document as recvault last wrote it, for the code that rewrites it.

The price refresh and the Twilio delete read the document, change a field and write it back,
vouched for by a new entry naming its SHA-256. Were they to read whatever version is current,
a version stacked by someone else (another retention, other media) would come back out of the
rewrite vouched for, and the forgery laundered. So they read it here: the current version,
only when its SHA-256 is the last one the recording's chain records (audit.vouched).
"""

from __future__ import annotations

import json
from typing import Any

from recvault.audit.append import read_chain_originals
from recvault.audit.chain import sha256_hex
from recvault.audit.vouched import document_hashes
from recvault.errors import IntegrityFailed
from recvault.storage.base import ObjectStore


class UnvouchedDocument(IntegrityFailed):
    """The current document is not the one recvault wrote last: nothing is rewritten from it."""


def vouched_document(store: ObjectStore, prefix: str, recording_sid: str, key: str) -> dict[str, Any]:
    """The document at `key`, if recvault wrote it last; UnvouchedDocument otherwise.

    A chain from before entries named document hashes records none: its current document is taken.
    """
    body = store.get_bytes(key)
    hashes = document_hashes(read_chain_originals(store, prefix, recording_sid).trusted)
    if hashes and sha256_hex(body) != hashes[-1]:
        raise UnvouchedDocument(f"{key}: the current version (SHA-256 {sha256_hex(body)[:16]}…) is not the one "
                                f"recvault wrote last ({hashes[-1][:16]}…); left as it is, nothing rewritten")
    document = json.loads(body)
    return document if isinstance(document, dict) else {}
