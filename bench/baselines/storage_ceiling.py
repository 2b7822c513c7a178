"""The storage ceiling: boto3 uploading bytes that are already in memory, two ways."""

from __future__ import annotations

import time
from io import BytesIO

from recvault.simulator.media import iter_media


def _in_memory(recording: dict) -> bytes:
    return b"".join(iter_media(recording["sid"], "wav", recording["channels"], recording["duration"]))


def upload_from_memory(job: dict, client, recording: dict) -> float:
    """Seconds `upload_fileobj` (boto3's managed, threaded multipart) takes for the same bytes."""
    data = _in_memory(recording)
    started = time.perf_counter()
    client.upload_fileobj(BytesIO(data), job["bucket"], f"ceiling-upload/{recording['sid']}.wav")
    return time.perf_counter() - started


def put_from_memory(job: dict, client, recording: dict) -> float:
    """Seconds one `put_object` of the same bytes takes."""
    data = _in_memory(recording)
    started = time.perf_counter()
    client.put_object(Bucket=job["bucket"], Key=f"ceiling-put/{recording['sid']}.wav", Body=data)
    return time.perf_counter() - started
