"""What the bucket really holds, read with boto3 directly: versions, documents, audit, uploads."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

DATE = r"date=\d{4}-\d{2}-\d{2}"
SID = r"RE[0-9a-fA-F]{32}"
# Every key recvault may write; anything else (a stray character, a path trick) is a finding.
# Audit records of no one recording ("policy-loaded" at each worker start) sit under system/.
KEY_LAYOUT = re.compile(
    rf"^(?:media/{DATE}/AC[0-9a-fA-F]{{32}}/(?P<media>{SID})\.(?:wav|mp3)"
    rf"|metadata/{DATE}/(?P<metadata>{SID})\.json"
    rf"|events/{DATE}/(?P<event>{SID})-(?P<status>[a-z-]+)\.json"
    rf"|audit/chains/(?P<audit>{SID})/\d{{6,}}\.json"
    rf"|(?P<trail>audit/chains/system-\d{{4}}-\d{{2}}-\d{{2}}/\d{{6,}}\.json"
    rf"|audit/index/{DATE}/(?:{SID}|system-\d{{4}}-\d{{2}}-\d{{2}})-\d{{6,}}-[0-9a-f]{{16}}"
    rf"|audit/seals/{DATE}(?:/\d{{6}})?\.json|audit/accepted/{DATE}/\d+-\d+\.jsonl)"
    rf"|dead-letters/(?P<letter>[A-Za-z0-9:_.-]+)/\d{{4}}-\d{{2}}-\d{{2}}T\d{{6}}(?:\.\d{{6}})?Z(?:-resolved)?\.json)$"
)


def s3_client(endpoint_url: str) -> Any:
    """A boto3 S3 client for a local SeaweedFS (which accepts any key pair)."""
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name="us-east-1",
        aws_access_key_id="fault-suite", aws_secret_access_key="fault-suite-reader",
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 8}),
    )


@dataclass
class Snapshot:
    """The bucket at one moment, indexed by RecordingSid."""

    versions: dict[str, int] = field(default_factory=dict)  # key -> object versions
    delete_markers: list[str] = field(default_factory=list)
    media: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    metadata: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    events: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    audit: Counter = field(default_factory=Counter)  # (sid, action) -> records
    odd_keys: list[str] = field(default_factory=list)
    uploads: list[tuple[str, str]] = field(default_factory=list)


class ArchiveView:
    """Reads a recvault bucket without going through recvault's own storage code."""

    def __init__(self, endpoint_url: str, bucket: str) -> None:
        self.bucket = bucket
        self._client = s3_client(endpoint_url)

    def snapshot(self) -> Snapshot:
        """Every version and unfinished upload in the bucket, sorted into recvault's layout."""
        snap = Snapshot()
        for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.bucket):
            for version in page.get("Versions", []):
                snap.versions[version["Key"]] = snap.versions.get(version["Key"], 0) + 1
            snap.delete_markers += [marker["Key"] for marker in page.get("DeleteMarkers", [])]
        for key in snap.versions:
            match = KEY_LAYOUT.match(key)
            if match is None:
                snap.odd_keys.append(key)
            elif match["media"]:
                snap.media[match["media"]].append(key)
            elif match["metadata"]:
                snap.metadata[match["metadata"]].append(key)
            elif match["event"]:
                snap.events[(match["event"], match["status"])].append(key)
            elif match["letter"] or match["trail"]:
                continue  # dead letters (the verdict reads them from Redis); seals, index rows, the ledger
            else:
                snap.audit[(match["audit"], self.document(key)["action"])] += 1
        snap.uploads = self.snapshot_uploads()
        return snap

    def snapshot_uploads(self) -> list[tuple[str, str]]:
        """(key, upload id) of every multipart upload begun and not finished or aborted."""
        pages = self._client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket)
        return [(upload["Key"], upload["UploadId"]) for page in pages for upload in page.get("Uploads") or []]

    def put(self, key: str, body: bytes, *, metadata: dict[str, str] | None = None) -> None:
        """Write an object as someone other than recvault would (no Object Lock, no checksum)."""
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=metadata or {})

    def list_keys(self, prefix: str) -> list[str]:
        """Keys of current objects under `prefix`."""
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def document(self, key: str) -> dict:
        """The current version of a JSON document."""
        body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        with body:
            return json.loads(body.read())

    def object_size(self, key: str) -> int | None:
        """Size of the current version, None when there is none."""
        try:
            return int(self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except self._client.exceptions.ClientError:
            return None

    def sha256(self, key: str) -> str:
        """SHA-256 of the stored bytes, recomputed by reading the whole object."""
        digest = hashlib.sha256()
        body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        with body:
            for chunk in body.iter_chunks(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
