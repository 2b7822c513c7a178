"""Streaming multipart parts: cut a byte stream into parts and upload them, two at a time."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from recvault.errors import IntegrityFailed, StorageRejected
from recvault.storage.checksums import b64_sha256
from recvault.storage.s3_errors import s3_errors

MiB = 1024 * 1024
# S3 parts must be at least 5 MiB, except the last one.
MIN_PART_SIZE = 5 * MiB
# S3 parts may be at most 5 GiB.
MAX_PART_SIZE = 5 * 1024 * MiB
# S3 numbers parts 1 to 10,000: with 8 MiB parts an object can reach 78 GiB.
MAX_PARTS = 10_000
# Parts uploading at once. With the one being filled, memory stays near 3 x part size,
# and downloading the next part overlaps with uploading the previous ones.
PARTS_IN_FLIGHT = 2


class StreamTally:
    """Size and full-object SHA-256 of the bytes that flow through `count`."""

    def __init__(self) -> None:
        self.size = 0
        self.sha256 = hashlib.sha256()

    def count(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass chunks through unchanged, hashing and counting them."""
        for chunk in chunks:
            self.sha256.update(chunk)
            self.size += len(chunk)
            yield chunk


def cut_parts(chunks: Iterable[bytes], part_size: int) -> Iterator[bytearray]:
    """Regroup chunks of any size into parts of exactly `part_size` bytes, the last one shorter."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= part_size:
            # Hand the filled buffer itself over and keep only the remainder: no part-size copy.
            rest = buffer[part_size:]
            del buffer[part_size:]
            yield buffer
            buffer = rest
    if buffer:
        yield buffer


def gather(chunks: Iterable[bytes], size: int) -> Iterator[bytearray]:
    """The whole content as one buffer allocated at `size`, when it is that long or shorter.

    Content longer than announced passes on as it comes (cut_parts then regroups it), so a
    wrong hint costs memory, never bytes.
    """
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    stream = iter(chunks)
    for chunk in stream:
        end = filled + len(chunk)
        if end > size:
            view.release()
            del buffer[filled:]
            yield buffer
            yield bytearray(chunk)
            yield from (bytearray(rest) for rest in stream)
            return
        view[filled:end] = chunk
        filled = end
    view.release()
    del buffer[filled:]
    if buffer:
        yield buffer


def upload_parts(
    client: Any, bucket: str, key: str, upload_id: str, parts: Iterator[bytearray]
) -> list[dict[str, Any]]:
    """Upload every part with its SHA-256, at most PARTS_IN_FLIGHT at once; return the part list."""
    done: list[dict[str, Any]] = []
    in_flight: deque[Future[dict[str, Any]]] = deque()
    with ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part") as pool:
        try:
            number = 0
            while True:
                # Wait for a free slot before reading on, so no more than 3 parts are held.
                if len(in_flight) >= PARTS_IN_FLIGHT:
                    done.append(in_flight.popleft().result())
                part = next(parts, None)
                if part is None:
                    break
                number += 1
                if number > MAX_PARTS:
                    raise StorageRejected(f"{key}: over {MAX_PARTS} parts; raise the part size")
                upload = pool.submit(_upload_part, client, bucket, key, upload_id, number, part)
                in_flight.append(upload)
                del part
            done.extend(future.result() for future in in_flight)
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise
        # Leaving the pool waits for parts still uploading, so an abort comes after them.
    return done


def _upload_part(
    client: Any, bucket: str, key: str, upload_id: str, number: int, part: bytearray
) -> dict[str, Any]:
    checksum = b64_sha256(part)
    with s3_errors(f"upload part {number} of {key}"):
        response = client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=part,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum,
        )
    echoed = response.get("ChecksumSHA256")
    if echoed is not None and echoed != checksum:
        raise IntegrityFailed(f"{key}: part {number} stored with SHA-256 {echoed}, sent {checksum}")
    return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}
