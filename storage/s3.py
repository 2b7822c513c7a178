"""ObjectStore on S3 (or SeaweedFS) with botocore, boto3's core: create-only, checksummed, locked, streaming."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

import botocore.loaders
import botocore.session
from botocore.config import Config

from recvault.errors import AlreadyExists, IntegrityFailed
from recvault.storage.base import ListedObject, Retention, StoredObject
from recvault.storage.budget import ByteBudget
from recvault.storage.checksums import b64_digest, b64_sha256, composite_sha256, hex_from_b64
from recvault.storage.multipart import (
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    PARTS_IN_FLIGHT,
    MiB,
    StreamTally,
    cut_parts,
    gather,
    upload_parts,
)
from recvault.storage.placement import Placement
from recvault.storage.s3_bucket import ensure_bucket
from recvault.storage.s3_controls import S3LockControls
from recvault.storage.s3_errors import NOT_FOUND, s3_errors
from recvault.storage.s3_params import retention_from_head, write_params
from recvault.storage.s3_setup import BucketSetup, SetupStep, init_bucket
from recvault.storage.tags import tag_set

if TYPE_CHECKING:
    from recvault.settings import Settings

log = logging.getLogger(__name__)

# 8 MiB parts: objects up to 78 GiB within S3's 10,000 parts, about 24 MiB of memory in use.
DEFAULT_PART_SIZE = 8 * MiB
# (operation, HTTP status) pairs that answer a check rather than fail: a HEAD finding nothing,
# a create-only write (If-None-Match: *) finding the key taken.
EXPECTED_ANSWERS = frozenset({("HeadObject", 404), ("PutObject", 412), ("CompleteMultipartUpload", 412)})
# A placeholder key pair for a local S3 endpoint when the AWS chain finds no credentials.
LOCAL_ACCESS_KEY = ("recvault-local", "recvault-local-secret")


# One botocore data loader per process: S3's service model and endpoint rules (about 15 MB
# once parsed, 0.1-0.2 s to read) are loaded once however many stores the process makes.
_LOADER = botocore.loaders.create_loader()
_SESSION_LOCK = threading.Lock()


def _session(region: str) -> botocore.session.Session:
    """A botocore session on the process's shared loader (sessions themselves are not thread-safe)."""
    with _SESSION_LOCK:
        session = botocore.session.get_session()
        session.register_component("data_loader", _LOADER)
        session.set_config_variable("region", region)
        return session


class S3Store(S3LockControls):
    """The S3 ObjectStore; the only place in recvault that talks to S3 (through botocore)."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        part_size: int = DEFAULT_PART_SIZE,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
        max_connections: int = 10,
        buffer_budget: int | None = None,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between 5 MiB and 5 GiB, not {part_size}")
        self.bucket = bucket
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.part_size = part_size
        # Recording bytes all of this store's writes may hold at once (see storage.budget);
        # None: each write holds what it needs, bounded per write only.
        self._budget = ByteBudget(buffer_budget) if buffer_budget else None
        # Set by ensure_bucket: whether the bucket has Object Lock (None until checked).
        self.object_lock_enabled: bool | None = None
        session = _session(region)
        credentials: dict[str, str] = {}
        if self.endpoint_url and session.get_credentials() is None:
            # SeaweedFS with no identities configured (embedded mode, tests) accepts any
            # signed request, so recvault runs there without AWS setup. Real S3 refuses the
            # placeholder (InvalidAccessKeyId → StorageRejected): a missing key is still loud.
            access_key, secret_key = LOCAL_ACCESS_KEY
            credentials = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
        config = Config(
            # Custom endpoints (SeaweedFS, MinIO) serve buckets by path, not by subdomain.
            s3={"addressing_style": "path"} if self.endpoint_url else {},
            # SigV4 for presigned URLs too (boto3 may presign with the retired SigV2 otherwise).
            signature_version="s3v4",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts},
            # One client serves every archive a threads worker runs at once (boto3 clients are
            # thread-safe); too small a pool would make them queue for a connection.
            max_pool_connections=max_connections,
        )
        with _SESSION_LOCK:
            self._client = session.create_client(
                "s3", endpoint_url=self.endpoint_url, config=config, **credentials
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        """Build the store from RECVAULT_S3_* settings."""
        endpoint = settings.s3_endpoint_url
        return cls(
            settings.s3_bucket,
            endpoint_url=str(endpoint) if endpoint else None,
            region=settings.s3_region,
            part_size=settings.s3_part_size_mib * MiB,
            # Each archive in flight holds at most PARTS_IN_FLIGHT connections (a single PUT: one).
            max_connections=max(10, PARTS_IN_FLIGHT * settings.archives_in_flight() + 2),
            buffer_budget=settings.worker_buffer_mib * MiB,
        )

    # --- bucket ---------------------------------------------------------------
    def ensure_bucket(self, *, create: bool) -> None:
        """Use the bucket as it is; create it with Object Lock only when `create` is true."""
        self.object_lock_enabled = ensure_bucket(self._client, self.bucket, create=create)

    def init_bucket(self, setup: BucketSetup, *, apply: bool = True) -> list[SetupStep]:
        """Create or check the bucket as the archive needs it (`recvault init-bucket`); see s3_setup."""
        return init_bucket(self._client, self.bucket, setup, apply=apply)

    # --- writes ---------------------------------------------------------------
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
        return self._put_object(key, data, b64_sha256(data), content_type=content_type,
                                metadata=metadata, tags=tags, retention=retention,
                                create_only=create_only, placement=placement)

    def _put_object(
        self,
        key: str,
        data: bytes | bytearray,
        checksum: str,
        *,
        content_type: str,
        metadata: dict[str, str] | None,
        tags: dict[str, str] | None,
        retention: Retention | None,
        create_only: bool,
        placement: Placement | None = None,
    ) -> StoredObject:
        """One PutObject of `data`, whose base64 SHA-256 the caller already knows."""
        params = write_params(content_type, metadata, tags, retention, placement)
        if create_only:
            params["IfNoneMatch"] = "*"
        with s3_errors(f"put {key}"):
            response = self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
                **params,
            )
        return StoredObject(
            key=key,
            size=len(data),
            version_id=response.get("VersionId"),
            etag=response.get("ETag"),
            sha256_hex=hex_from_b64(checksum),
            checksum_sha256=checksum,
            content_type=content_type,
            metadata=dict(metadata or {}),
            retention=retention,
        )

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
        """Create-only streaming write in bounded memory, verified before it returns."""
        if self._budget is None:
            return self._put_stream(key, chunks, content_type=content_type, metadata=metadata, tags=tags,
                                    retention=retention, placement=placement, size_hint=size_hint)
        # What this write will hold: the whole content when it fits in one part, else the
        # parts in flight plus the one being filled.
        small = size_hint is not None and size_hint < self.part_size
        with self._budget.reserve(size_hint if small and size_hint is not None
                                  else (PARTS_IN_FLIGHT + 1) * self.part_size):
            return self._put_stream(key, chunks, content_type=content_type, metadata=metadata, tags=tags,
                                    retention=retention, placement=placement, size_hint=size_hint)

    def _put_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str,
        metadata: dict[str, str] | None,
        tags: dict[str, str] | None,
        retention: Retention | None,
        placement: Placement | None,
        size_hint: int | None,
    ) -> StoredObject:
        params = write_params(content_type, metadata, tags, retention, placement)
        tally = StreamTally()
        counted: Iterable[bytes] = tally.count(chunks)
        if size_hint is not None and size_hint < self.part_size:
            # One buffer of the announced size, not one grown (and copied) chunk by chunk,
            # handed to the PUT as it is when the content was no longer than announced.
            pieces = gather(counted, size_hint)
            whole, more = next(pieces, bytearray()), next(pieces, None)
            if more is None:
                return self._put_object(
                    key, whole, b64_digest(tally.sha256.digest()), content_type=content_type,
                    metadata=metadata, tags=tags, retention=retention, create_only=True, placement=placement,
                )  # fmt: skip
            counted = cast("Iterator[bytes]", itertools.chain([whole, more], pieces))
            del whole, more
        parts = cut_parts(counted, self.part_size)
        first = next(parts, bytearray())
        if len(first) < self.part_size:  # the whole content is smaller than one part
            # The stream has ended, so its running SHA-256 is the object's: no second pass,
            # and the buffer goes out as it is, uncopied.
            return self._put_object(
                key, first, b64_digest(tally.sha256.digest()), content_type=content_type,
                metadata=metadata, tags=tags, retention=retention, create_only=True, placement=placement,
            )  # fmt: skip
        parts = itertools.chain([first], parts)
        del first  # held from here on only until it is uploaded
        self._before_multipart(key)
        with s3_errors(f"start multipart upload of {key}"):
            upload_id = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", **params
            )["UploadId"]
        try:
            part_list = upload_parts(self._client, self.bucket, key, upload_id, parts)
            with s3_errors(f"complete multipart upload of {key}"):
                response = self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": part_list},
                    IfNoneMatch="*",
                )
        except BaseException:
            # Whatever failed (S3, the network, or the source of the chunks), leave no upload.
            self._abort_quietly(key, upload_id)
            raise
        checksum = composite_sha256(part["ChecksumSHA256"] for part in part_list)
        stored = self.head(key, version_id=response.get("VersionId"))
        if stored is None or stored.size != tally.size or stored.checksum_sha256 != checksum:
            raise IntegrityFailed(
                f"{key}: stored {stored and stored.size} bytes with checksum "
                f"{stored and stored.checksum_sha256}; sent {tally.size} bytes, {checksum}"
            )
        return StoredObject(
            key=key,
            size=tally.size,
            version_id=stored.version_id,
            etag=stored.etag,
            sha256_hex=tally.sha256.hexdigest(),
            checksum_sha256=checksum,
            content_type=content_type,
            metadata=dict(metadata or {}),
            retention=retention,
        )

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        """Replace the tags of the current version at `key`."""
        with s3_errors(f"put tags of {key}"):
            self._client.put_object_tagging(
                Bucket=self.bucket, Key=key, Tagging={"TagSet": tag_set(tags)}
            )

    # --- reads ----------------------------------------------------------------
    def get_tags(self, key: str) -> dict[str, str]:
        """The tags of the current version at `key`."""
        with s3_errors(f"get tags of {key}"):
            answer = self._client.get_object_tagging(Bucket=self.bucket, Key=key)
        return {tag["Key"]: tag["Value"] for tag in answer.get("TagSet", [])}

    def delete_markers(self, prefix: str) -> list[tuple[str, str, bool]]:
        """(key, version id, is latest) of every delete marker under `prefix`."""
        paginator = self._client.get_paginator("list_object_versions")
        with s3_errors(f"list versions {prefix!r}"):
            return [(marker["Key"], marker.get("VersionId", ""), bool(marker.get("IsLatest")))
                    for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                    for marker in page.get("DeleteMarkers") or []]

    def head(self, key: str, version_id: str | None = None) -> StoredObject | None:
        """Describe the current version (or `version_id`) at `key`, or None when there is none."""
        extra = {"VersionId": version_id} if version_id else {}
        answer = None
        with s3_errors(f"head {key}", ignore=NOT_FOUND):
            answer = self._client.head_object(
                Bucket=self.bucket, Key=key, ChecksumMode="ENABLED", **extra
            )
        if answer is None:
            return None
        return StoredObject(
            key=key,
            size=answer["ContentLength"],
            version_id=answer.get("VersionId"),
            etag=answer.get("ETag"),
            checksum_sha256=answer.get("ChecksumSHA256"),
            content_type=answer.get("ContentType"),
            metadata=answer.get("Metadata", {}),
            retention=retention_from_head(answer),
        )

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        """Read a small object whole (documents, never media)."""
        extra = {"VersionId": version_id} if version_id else {}
        with s3_errors(f"get {key}"):
            body = self._client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
            with body:
                return bytes(body.read())

    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream an object's content."""
        with s3_errors(f"get {key}"):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with body:
                yield from body.iter_chunks(chunk_size)

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix`, in key order."""
        paginator = self._client.get_paginator("list_objects_v2")
        with s3_errors(f"list {prefix!r}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    def list_objects(self, prefix: str, *, start_after: str | None = None) -> Iterator[ListedObject]:
        """Every object under `prefix` (after `start_after`, when given), in key order."""
        paginator = self._client.get_paginator("list_objects_v2")
        extra = {"StartAfter": start_after} if start_after else {}
        with s3_errors(f"list {prefix!r}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **extra):
                for item in page.get("Contents", []):
                    yield ListedObject(item["Key"], item["Size"], item.get("ETag", ""), item["LastModified"])

    def list_folders(self, prefix: str) -> list[str]:
        """The immediate sub-folders of `prefix` (keys up to the next '/'), in key order."""
        paginator = self._client.get_paginator("list_objects_v2")
        with s3_errors(f"list folders under {prefix!r}"):
            return [
                folder["Prefix"]
                for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
                for folder in page.get("CommonPrefixes") or []
            ]

    def presigned_get(self, key: str, *, version_id: str | None, expires_seconds: int,
                      filename: str | None = None) -> str:
        """A URL that reads this object (this version) without credentials until it expires."""
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        if filename:
            params["ResponseContentDisposition"] = f'inline; filename="{filename}"'
        with s3_errors(f"presign {key}"):
            return str(self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_seconds))

    def observe_errors(self, observer: Callable[[str, int], None]) -> None:
        """Call `observer(operation, http_status)` for each S3 call that fails (status 0: no answer).

        Answers that are a check's expected result are not failures: 404 to a HEAD (nothing
        there yet) and 412 to a create-only write (already there).
        """
        def after_call(http_response: Any, model: Any, **_: Any) -> None:
            status = http_response.status_code
            if status >= 400 and (model.name, status) not in EXPECTED_ANSWERS:
                observer(model.name, status)

        # botocore emits `after-call-error.s3.<Operation>` with the exception and the request
        # context, not the operation model: the operation is the event name's last part.
        def after_error(event_name: str, **_: Any) -> None:
            observer(event_name.rsplit(".", 1)[-1], 0)

        self._client.meta.events.register("after-call.s3", after_call)
        self._client.meta.events.register("after-call-error.s3", after_error)

    # --- unfinished uploads ---------------------------------------------------
    def incomplete_uploads(self, prefix: str = "") -> list[tuple[str, str]]:
        """(key, upload id) of multipart uploads begun and never finished."""
        paginator = self._client.get_paginator("list_multipart_uploads")
        with s3_errors(f"list multipart uploads under {prefix!r}"):
            return [
                (upload["Key"], upload["UploadId"])
                for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for upload in page.get("Uploads") or []
            ]

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort one unfinished multipart upload."""
        with s3_errors(f"abort multipart upload of {key}"):
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def _before_multipart(self, key: str) -> None:
        """Refuse before any part is sent when `key` exists; abort what a killed writer left there.

        A single PUT is create-only by itself (If-None-Match). A multipart upload learns that
        only when it completes, after every part went out, so it looks first; and only a
        multipart upload can find, and must clear, an unfinished one for the same key.
        """
        if self.head(key) is not None:
            raise AlreadyExists(f"{key} already exists")
        for stale_key, upload_id in self.incomplete_uploads(key):
            if stale_key == key:
                self.abort_upload(key, upload_id)
                log.info("aborted an unfinished multipart upload", extra={"key": key})

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        try:
            self.abort_upload(key, upload_id)
        except Exception:
            # The original error matters more; incomplete_uploads() finds this one later.
            log.exception("could not abort multipart upload", extra={"key": key})

