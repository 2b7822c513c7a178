"""The naive archive: download the whole media body, then `put_object` it."""

from __future__ import annotations

import time

import requests


def download_then_put(job: dict, client, recording: dict) -> float:
    """Seconds for one recording, fetched from the simulated Twilio exactly as recvault fetches it."""
    url = f"{job['api_base']}/2010-04-01/Accounts/{job['account_sid']}/Recordings/{recording['sid']}.wav"
    query = {"RequestedChannels": "2"} if recording["channels"] == 2 else None
    started = time.perf_counter()
    response = requests.get(url, params=query, auth=(job["account_sid"], job["auth_token"]), timeout=600)
    response.raise_for_status()
    client.put_object(Bucket=job["bucket"], Key=f"naive/{recording['sid']}.wav", Body=response.content,
                      ContentType="audio/x-wav")
    return time.perf_counter() - started
