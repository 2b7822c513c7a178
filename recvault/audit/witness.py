"""The seal witness: a copy of each seal's hash kept outside the bucket (RECVAULT_SEAL_WITNESS).

Seals are COMPLIANCE-locked, but whoever holds the worker's S3 rights can still stack a version
over a seal, hide it under a delete marker, or take a seal key before the sealer does. A witness
elsewhere holds, for every seal the sealer wrote, one record

    {"key", "period_start", "sha256" (of the seal's bytes), "root", "prev_seal"}

so `audit verify` can tell the seals in the bucket from the seals the sealer wrote. Two kinds:

* `s3://bucket/prefix`: one object per seal, named after the seal's key, create-only and
  COMPLIANCE-locked like the seal (a second bucket with Object Lock; reached with the archive's
  S3 endpoint and credentials). Records are read at their original versions.
* a filesystem path: one JSON line per seal appended to the file (opened O_APPEND and fsync'd).
  Make it append-only (`chattr +a`) or ship it off the host; every sealing worker must write the
  same file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from recvault import layout
from recvault.audit import chain
from recvault.audit.originals import original_bytes, versions_by_key
from recvault.errors import AlreadyExists, ConfigurationError, PermanentError
from recvault.settings import Settings
from recvault.storage.base import ObjectStore, Retention

S3_SCHEME = "s3://"


class WitnessMismatch(PermanentError):
    """The witness already holds another record for a seal key: the bucket's seal is not the one witnessed."""


def witness_record(key: str, body: bytes) -> dict[str, Any]:
    """What the witness keeps of one seal (`body`: the seal's bytes as stored)."""
    seal = chain.Seal.parse(body)
    return {"key": key, "period_start": seal.period_start.isoformat(), "sha256": seal.sha256, "root": seal.root,
            "prev_seal": seal.prev_seal}


class Witness(Protocol):
    """Where seal records go; `where` names it in messages."""

    where: str

    def record(self, key: str, body: bytes, retention: Retention | None = None) -> dict[str, Any]:
        """Keep the record of the seal `body` stored at `key` (nothing new when it is kept already);
        WitnessMismatch when another record for `key` is kept."""

    def find(self, key: str) -> dict[str, Any] | None:
        """The record kept for the seal at `key`, if any."""

    def records(self) -> list[dict[str, Any]]:
        """Every record kept, in the order kept; a record that cannot be read is {"unreadable": what}."""


def _check_same(where: str, found: dict[str, Any], wanted: dict[str, Any]) -> None:
    if found != wanted:
        raise WitnessMismatch(f"{where} already holds another record for {wanted['key']}: SHA-256 "
                              f"{found.get('sha256')}, the seal's is {wanted['sha256']}")


class FileWitness:
    """One JSON line per seal, appended to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def __str__(self) -> str:
        return self.where

    def record(self, key: str, body: bytes, retention: Retention | None = None) -> dict[str, Any]:
        wanted = witness_record(key, body)
        found = self.find(key)
        if found is not None:
            _check_same(self.where, found, wanted)
            return found
        line = (json.dumps(wanted, separators=(",", ":"), sort_keys=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, line)  # one write of one line: appends never interleave
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return wanted

    def find(self, key: str) -> dict[str, Any] | None:
        return next((found for found in self.records() if found.get("key") == key), None)

    def records(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        found = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
                if not isinstance(parsed, dict):
                    raise ValueError(line)
                found.append(parsed)
            except ValueError:
                found.append({"unreadable": f"{self.where} line {number}: not a witness record"})
        return found


class S3Witness:
    """One create-only, COMPLIANCE-locked object per seal, in a bucket other than the archive's."""

    def __init__(self, store: ObjectStore, prefix: str, where: str) -> None:
        self.store = store
        self.prefix = prefix
        self.where = where

    def __str__(self) -> str:
        return self.where

    def _key(self, seal_key: str) -> str:
        return f"{self.prefix}{seal_key}"

    def record(self, key: str, body: bytes, retention: Retention | None = None) -> dict[str, Any]:
        wanted = witness_record(key, body)
        try:
            self.store.put_bytes(self._key(key), layout.json_line(wanted), content_type="application/json",
                                 retention=retention)
        except AlreadyExists:
            found = self.find(key)
            _check_same(self.where, found or {}, wanted)
        return wanted

    def find(self, key: str) -> dict[str, Any] | None:
        body = original_bytes(self.store, self._key(key))
        return _parse(body, self._key(key)) if body is not None else None

    def records(self) -> list[dict[str, Any]]:
        found = []
        for key, versions in versions_by_key(self.store, self.prefix).items():
            if versions.original is not None:
                found.append(_parse(self.store.get_bytes(key, versions.original.version_id), key))
        return found


def _parse(body: bytes, where: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict):
            return parsed
    except ValueError:
        pass
    return {"unreadable": f"{where}: not a witness record"}


def open_witness(value: str, store_factory: Callable[[str], ObjectStore]) -> Witness | None:
    """The witness RECVAULT_SEAL_WITNESS names: None when empty, `s3://bucket/prefix`, else a file path.

    `store_factory(bucket)` makes the store of an S3 witness's bucket."""
    value = value.strip()
    if not value:
        return None
    if value.startswith(S3_SCHEME):
        bucket, _, prefix = value.removeprefix(S3_SCHEME).partition("/")
        if not bucket:
            raise ConfigurationError(f"RECVAULT_SEAL_WITNESS: {value!r} names no bucket (s3://bucket/prefix)")
        prefix = prefix.strip("/")
        return S3Witness(store_factory(bucket), f"{prefix}/" if prefix else "", value)
    return FileWitness(Path(value))


def witness_from_settings(settings: Settings) -> Witness | None:
    """The witness RECVAULT_SEAL_WITNESS names, an S3 one reached like the archive (RECVAULT_S3_ENDPOINT_URL,
    RECVAULT_S3_REGION, the same AWS credentials)."""
    from recvault.storage.s3 import S3Store

    endpoint = str(settings.s3_endpoint_url) if settings.s3_endpoint_url else None
    return open_witness(settings.seal_witness,
                        lambda bucket: S3Store(bucket, endpoint_url=endpoint, region=settings.s3_region))
