"""Run one archive baseline in a process of its own: `python -m bench.baselines.archive_job JOB.json`.

The job names the design, S3 endpoint and bucket, the simulator and account, and the
recordings (sid, channels, duration) of each run, one after another. Prints one JSON
object: the seconds of every upload and the process's peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from bench.baselines.naive_archive import download_then_put
from bench.baselines.s3_client import s3_client
from bench.baselines.storage_ceiling import put_from_memory, upload_from_memory

DESIGNS = {"upload_fileobj": upload_from_memory, "put_object": put_from_memory, "naive": download_then_put}


def main(path: str) -> int:
    job = json.loads(Path(path).read_text())
    client = s3_client(job["endpoint"], job["credentials"])
    design = DESIGNS[job["design"]]
    runs = [[design(job, client, recording) for recording in batch] for batch in job["runs"]]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"runs": runs, "peak_rss_bytes": peak}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
