"""S3 Object Lock controls beside the writes: legal hold, per-version locks and deletes, lifecycle rules.

A mixin of S3Store (kept apart so the write path stays one idea); it needs only the
store's boto3 client and bucket name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from recvault.storage.base import ObjectVersion, Retention
from recvault.storage.s3_errors import s3_errors
from recvault.storage.s3_params import retention_from_head

# What S3 answers GetBucketLifecycleConfiguration on a bucket that has none.
NO_LIFECYCLE = frozenset({"NoSuchLifecycleConfiguration"})
# What S3 answers GetObjectLegalHold on a version that never had a legal hold set.
NO_LEGAL_HOLD = frozenset({"NoSuchObjectLegalHold"})


class S3LockControls:
    """Legal hold, versions and lifecycle on the store's bucket."""

    bucket: str
    _client: Any

    def set_legal_hold(self, key: str, on: bool, *, version_id: str | None = None) -> None:
        """Turn the legal hold of one version (the current one by default) on or off."""
        extra = {"VersionId": version_id} if version_id else {}
        with s3_errors(f"{'set' if on else 'release'} legal hold of {key}"):
            self._client.put_object_legal_hold(Bucket=self.bucket, Key=key,
                                               LegalHold={"Status": "ON" if on else "OFF"}, **extra)

    def legal_hold(self, key: str, *, version_id: str | None = None) -> bool:
        """Whether one version (the current one by default) is under legal hold."""
        extra = {"VersionId": version_id} if version_id else {}
        answer: dict[str, Any] = {}
        with s3_errors(f"get legal hold of {key}", ignore=NO_LEGAL_HOLD):
            answer = self._client.get_object_legal_hold(Bucket=self.bucket, Key=key, **extra)
        return bool(answer.get("LegalHold", {}).get("Status") == "ON")

    def lock_of(self, key: str, version_id: str) -> Retention | None:
        """The Object Lock retention and legal hold one version carries, None when it has neither."""
        with s3_errors(f"head {key} version {version_id}"):
            answer = self._client.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        return retention_from_head(answer)

    def list_versions(self, prefix: str) -> Iterator[ObjectVersion]:
        """Every version and delete marker under `prefix`, in key order."""
        paginator = self._client.get_paginator("list_object_versions")
        with s3_errors(f"list versions under {prefix!r}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                found = [ObjectVersion(v["Key"], v["VersionId"], bool(v.get("IsLatest")), False, v.get("Size", 0),
                                       v.get("LastModified")) for v in page.get("Versions") or []]
                found += [ObjectVersion(m["Key"], m["VersionId"], bool(m.get("IsLatest")), True, 0,
                                        m.get("LastModified")) for m in page.get("DeleteMarkers") or []]
                yield from sorted(found, key=lambda v: v.key)

    def iter_version(self, key: str, version_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream one version's content."""
        with s3_errors(f"get {key} version {version_id}"):
            body = self._client.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)["Body"]
            with body:
                yield from body.iter_chunks(chunk_size)

    def delete_version(self, key: str, version_id: str) -> None:
        """Delete one version for good; the store refuses (StorageRejected) while it is locked.

        Never sends BypassGovernanceRetention: recvault deletes only what no lock protects.
        """
        with s3_errors(f"delete {key} version {version_id}"):
            self._client.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)

    def lifecycle_rules(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules (S3's shape), empty when it has none."""
        answer: dict[str, Any] | None = None
        with s3_errors(f"get lifecycle of {self.bucket}", ignore=NO_LIFECYCLE):
            answer = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        return list((answer or {}).get("Rules", []))

    def put_lifecycle_rules(self, rules: list[dict[str, Any]]) -> None:
        """Replace the bucket's lifecycle configuration with `rules`."""
        with s3_errors(f"put lifecycle of {self.bucket}"):
            self._client.put_bucket_lifecycle_configuration(Bucket=self.bucket,
                                                            LifecycleConfiguration={"Rules": rules})
