"""What was first written at a key: create-only objects are read at their oldest version.

S3 Object Lock protects versions, not keys. Anyone allowed PutObject can stack a new version
over a create-only key (a plain PUT without `If-None-Match`), or hide it under a delete
marker, and the locked original stays underneath. So whoever must not be fooled — the sealer,
`audit verify` — reads the oldest version, and treats every later version or delete marker
at such a key as something to report, not as the record.

S3 lists the versions of a key newest first (ListObjectVersions); that order, not version
ids (opaque, and in some stores decreasing), tells which is the oldest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from recvault.storage.base import ObjectStore, ObjectVersion


@dataclass(frozen=True)
class KeyVersions:
    """Every version and delete marker at one key, oldest first."""

    key: str
    versions: tuple[ObjectVersion, ...]

    @property
    def original(self) -> ObjectVersion | None:
        """The first version written (None: nothing but delete markers, or nothing)."""
        return self.versions[0] if self.versions and not self.versions[0].is_delete_marker else None

    @property
    def later(self) -> list[ObjectVersion]:
        """Every version and delete marker after the original (all of them when there is no original)."""
        return list(self.versions[1:] if self.original is not None else self.versions)


def versions_by_key(store: ObjectStore, prefix: str) -> dict[str, KeyVersions]:
    """Every key under `prefix` with its versions and delete markers, oldest first (one listing)."""
    listed: dict[str, list[tuple[datetime, int, int, ObjectVersion]]] = {}
    for rank, version in enumerate(store.list_versions(prefix)):
        # S3 answers versions and delete markers in two lists, each newest first: merge them by
        # LastModified, each list's own order breaking ties, a marker the newer of a tied pair.
        when = version.last_modified or datetime.min.replace(tzinfo=UTC)
        listed.setdefault(version.key, []).append((when, int(version.is_delete_marker), -rank, version))
    return {key: KeyVersions(key, tuple(v for *_, v in sorted(found, key=lambda item: item[:3])))
            for key, found in sorted(listed.items())}


def original_bytes(store: ObjectStore, key: str) -> bytes | None:
    """The bytes of the oldest version at `key`, or None when none is left."""
    found = versions_by_key(store, key).get(key)
    original = found.original if found else None
    return store.get_bytes(key, original.version_id) if original else None
