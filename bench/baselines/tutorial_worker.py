"""The archive worker tutorials teach: a Celery task that fetches the recording whole, then `put_object`.

Run as `celery -A bench.baselines.tutorial_worker worker -P prefork -c 2 -Q tutorial` with
TUTORIAL_BROKER_URL, TUTORIAL_S3_ENDPOINT, TUTORIAL_BUCKET, TUTORIAL_ACCOUNT_SID and
TUTORIAL_AUTH_TOKEN set (`-P solo` is the naive single-process loop). Each task asks Twilio
for the Recording resource, then for the media, one after the other, holds the body in
memory and uploads it; it counts itself done in Redis so the benchmark can time the batch.
"""

from __future__ import annotations

import os
import time

import redis
import requests
from celery import Celery

from bench.baselines.s3_client import s3_client

DONE_KEY = "tutorial:done"
LAST_KEY = "tutorial:last"

app = Celery("tutorial", broker=os.environ.get("TUTORIAL_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_ignore_result=True,
                worker_hijack_root_logger=False)
_clients: dict[str, object] = {}


def _s3():
    if "s3" not in _clients:
        _clients["s3"] = s3_client(os.environ["TUTORIAL_S3_ENDPOINT"], {
            "aws_access_key_id": os.environ["TUTORIAL_ACCESS_KEY"],
            "aws_secret_access_key": os.environ["TUTORIAL_SECRET_KEY"]})
    return _clients["s3"]


@app.task(name="tutorial.archive")
def archive(recording_url: str, sid: str, channels: int) -> None:
    auth = (os.environ["TUTORIAL_ACCOUNT_SID"], os.environ["TUTORIAL_AUTH_TOKEN"])
    resource = requests.get(recording_url + ".json", auth=auth, timeout=60)
    resource.raise_for_status()
    query = {"RequestedChannels": "2"} if channels == 2 else None
    media = requests.get(recording_url + ".wav", params=query, auth=auth, timeout=600)
    media.raise_for_status()
    _s3().put_object(Bucket=os.environ["TUTORIAL_BUCKET"], Key=f"tutorial/{sid}.wav", Body=media.content,
                     ContentType="audio/x-wav", Metadata={"duration": str(resource.json().get("duration"))})
    with redis.Redis.from_url(app.conf.broker_url) as client:
        pipe = client.pipeline()
        pipe.incr(DONE_KEY)
        pipe.set(LAST_KEY, repr(time.time()))
        pipe.execute()
