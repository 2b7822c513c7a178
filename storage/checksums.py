"""SHA-256 checksums in the forms S3 sends and returns (base64, and composite for multipart)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable


def b64_sha256(data: bytes | bytearray) -> str:
    """The base64 SHA-256 that S3 takes as `ChecksumSHA256` for a whole object or one part."""
    return b64_digest(hashlib.sha256(data).digest())


def b64_digest(digest: bytes) -> str:
    """A raw digest in the base64 form of S3's checksum headers."""
    return base64.b64encode(digest).decode("ascii")


def composite_sha256(part_checksums: Iterable[str]) -> str:
    """S3's multipart checksum: base64(sha256(raw part digests concatenated)) + "-<parts>"."""
    digests = [base64.b64decode(checksum) for checksum in part_checksums]
    combined = hashlib.sha256(b"".join(digests)).digest()
    return f"{base64.b64encode(combined).decode('ascii')}-{len(digests)}"


def hex_from_b64(checksum: str) -> str:
    """Hex form of a base64 full-object checksum (as recvault's metadata documents keep it)."""
    return base64.b64decode(checksum).hex()
