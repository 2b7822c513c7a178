"""The object-store interface the rest of recvault codes against; only storage.s3 talks to S3 (through botocore)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from recvault.storage.placement import Placement


@dataclass(frozen=True)
class Retention:
    """How long an object is locked (S3 Object Lock) and whether it is under legal hold."""

    mode: Literal["COMPLIANCE", "GOVERNANCE"] | None = None
    until: datetime | None = None
    legal_hold: bool = False


@dataclass(frozen=True)
class StoredObject:
    """What the store holds at a key, as reported after a write or a HEAD."""

    key: str
    size: int
    version_id: str | None = None
    etag: str | None = None
    # Full-object SHA-256 (hex) when the writer computed it; None from a plain HEAD.
    sha256_hex: str | None = None
    # The store's own checksum value: full-object base64, or "<base64>-<parts>" for multipart.
    checksum_sha256: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    retention: Retention | None = None


@dataclass(frozen=True)
class ListedObject:
    """One entry of a listing: enough to tell whether a cached copy is still current."""

    key: str
    size: int
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class ObjectVersion:
    """One version at a key in a versioned bucket (a delete marker has no content)."""

    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool = False
    size: int = 0
    # When the store made it (S3's LastModified, to the second in some stores).
    last_modified: datetime | None = None


class ObjectStore(Protocol):
    """Create-only, checksummed, streaming object storage."""

    # Known once ensure_bucket() has run: whether the bucket keeps Object Lock retention.
    object_lock_enabled: bool | None

    def ensure_bucket(self, *, create: bool) -> None:
        """Check the bucket is usable; create it with Object Lock when `create` is true."""

    def head(self, key: str, version_id: str | None = None) -> StoredObject | None:
        """Describe the current version at `key` (or `version_id`), or None when there is none."""

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        retention: Retention | None = None,
        create_only: bool = True,
        placement: Placement | None = None,
    ) -> StoredObject:
        """Write a small object with a SHA-256 checksum; raise AlreadyExists when create-only."""

    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str,
        metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        retention: Retention | None = None,
        placement: Placement | None = None,
        size_hint: int | None = None,
    ) -> StoredObject:
        """Create-only streaming write in bounded memory, verified before it returns.

        `size_hint` (the source's announced length): content smaller than one part is then
        gathered in one buffer of exactly that size and written with a single PUT."""

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        """Read a small object whole (documents, never media)."""

    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream an object's content."""

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix`, in key order."""

    def list_objects(self, prefix: str, *, start_after: str | None = None) -> Iterator[ListedObject]:
        """Every object under `prefix` (after `start_after`, when given), in key order."""

    def list_folders(self, prefix: str) -> list[str]:
        """The immediate sub-folders of `prefix` (keys up to the next '/'), in key order."""

    def presigned_get(self, key: str, *, version_id: str | None, expires_seconds: int,
                      filename: str | None = None) -> str:
        """A URL that reads this object (this version) without credentials until it expires."""

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        """Replace the tags of the current version at `key`."""

    def get_tags(self, key: str) -> dict[str, str]:
        """The tags of the current version at `key`."""

    def delete_markers(self, prefix: str) -> list[tuple[str, str, bool]]:
        """(key, version id, is latest) of every delete marker under `prefix`."""

    def incomplete_uploads(self, prefix: str = "") -> list[tuple[str, str]]:
        """(key, upload id) of multipart uploads begun and never finished."""

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort one unfinished multipart upload."""

    # --- Object Lock controls: legal hold, versions, lifecycle -------------------
    def set_legal_hold(self, key: str, on: bool, *, version_id: str | None = None) -> None:
        """Turn the legal hold of one version (the current one by default) on or off."""

    def legal_hold(self, key: str, *, version_id: str | None = None) -> bool:
        """Whether one version (the current one by default) is under legal hold."""

    def lock_of(self, key: str, version_id: str) -> Retention | None:
        """The Object Lock retention and legal hold one version carries, None when it has neither."""

    def list_versions(self, prefix: str) -> Iterator[ObjectVersion]:
        """Every version and delete marker under `prefix`, in key order."""

    def iter_version(self, key: str, version_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream one version's content (for hashing what is about to be erased)."""

    def delete_version(self, key: str, version_id: str) -> None:
        """Delete one version for good; the store refuses (StorageRejected) while it is locked."""

    def lifecycle_rules(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules (S3's shape), empty when it has none."""

    def put_lifecycle_rules(self, rules: list[dict[str, Any]]) -> None:
        """Replace the bucket's lifecycle configuration with `rules`."""
