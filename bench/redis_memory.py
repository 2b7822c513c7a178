"""Redis memory per callback: `python -m bench.redis_memory [--count N] [--url redis://HOST:PORT/DB]`.

Queues COUNT realistic callbacks through ingest's own writer (the same message, dedup key
and unacknowledged record a real callback leaves), then takes and acknowledges each as a
worker would (kombu: pop, then delete its unacknowledged record), and reports what Redis
holds per callback at each stage, from INFO memory deltas and from MEMORY USAGE per key.
Without --url it starts a private redis-server on a free port (the broker's settings:
noeviction); with --url it writes under a key prefix of its own there and removes it after.
It ends with the sizing of a site taking `--per-day` recordings a day.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import redis

from recvault.launch.services import RedisServer
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings

QUEUE = "recvault"
SECONDS_PER_DAY = 86_400
# Ingest writes in batches of up to this many (ingest/handoff.py's default).
BATCH = 500


def callback_payload(account_sid: str) -> tuple[str, dict]:
    """A completed dual-channel recording's callback as ingest queues it: its dedup key and payload."""
    recording = "RE" + secrets.token_hex(16)
    params = {
        "AccountSid": account_sid, "CallSid": "CA" + secrets.token_hex(16), "RecordingSid": recording,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Recordings/{recording}",
        "RecordingStatus": "completed", "RecordingDuration": "60", "RecordingChannels": "2",
        "RecordingStartTime": "Tue, 24 Nov 2026 10:00:00 +0000", "RecordingSource": "StartCallRecordingAPI",
        "RecordingTrack": "both", "ErrorCode": "0",
    }
    payload = {"params": params, "received_at": datetime.now(UTC).isoformat(),
               "idempotency_token": secrets.token_hex(16) + "-" + str(secrets.randbelow(10**18))}
    return f"{recording}:completed", payload


def measure(url: str, count: int, *, dedup_ttl: int, prefix: str = "") -> dict:
    """Queue, then take and acknowledge, `count` callbacks on `url`; bytes per callback at each stage."""
    options = {"global_keyprefix": prefix} if prefix else {}
    settings = Settings(broker_url=url, broker_transport_options=options)
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, QUEUE, dedup_ttl, timeout=10, connect_timeout=5)
    client, keys = writer.client, writer.keys
    account = "AC" + secrets.token_hex(16)
    try:
        before = _used(client)
        dedup_keys: list[str] = []
        for start in range(0, count, BATCH):
            items = [build_message(app, QUEUE, *callback_payload(account)) for _ in range(min(BATCH, count - start))]
            if not all(writer.enqueue(items)):
                raise RuntimeError("a fresh callback was refused as a duplicate")
            dedup_keys += [keys.dedup_prefix + item.dedup_key for item in items]
        queued = _used(client)
        sample = dedup_keys[:: max(1, count // 100)]
        per_key = {
            "dedup_key": _usage(client, sample) / len(sample),
            "queue_entry": _usage(client, [keys.queue]) / count,
            "unacked_record": _usage(client, [keys.unacked]) / count,
            "unacked_index_entry": _usage(client, [keys.unacked_index]) / count,
        }
        message_bytes = len(client.lindex(keys.queue, 0) or b"")
        _take_and_acknowledge(client, keys.queue, keys.unacked, keys.unacked_index)
        acknowledged = _used(client)
        remembered = _usage(client, sample) / len(sample)
        ttl = client.ttl(dedup_keys[0])
    finally:
        if prefix:
            _remove_prefixed(client, prefix)
        writer.close()
    return {
        "count": count,
        "dedup_ttl_seconds": dedup_ttl,
        "dedup_key_ttl_now": ttl,
        "message_bytes": message_bytes,
        "memory_usage_bytes": {**{k: round(v, 1) for k, v in per_key.items()},
                               "dedup_key_after_ack": round(remembered, 1)},
        "used_memory_per_callback": {"queued": round((queued - before) / count, 1),
                                     "acknowledged": round((acknowledged - before) / count, 1)},
    }


def sizing(result: dict, per_day: int) -> dict:
    """What a site taking `per_day` callbacks a day keeps in Redis, from one measurement."""
    per_callback = result["used_memory_per_callback"]
    live_keys = per_day * result["dedup_ttl_seconds"] / SECONDS_PER_DAY
    return {
        "per_day": per_day,
        "dedup_keys_alive": round(live_keys),
        "dedup_bytes": round(live_keys * per_callback["acknowledged"]),
        "backlog_bytes_per_hour_of_worker_outage": round(per_day / 24 * per_callback["queued"]),
    }


def _used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _usage(client: redis.Redis, names: list[str]) -> int:
    # SAMPLES 0: every element of a list, hash or sorted set, not an estimate from five.
    return sum(int(client.memory_usage(name, samples=0) or 0) for name in names)


def _take_and_acknowledge(client: redis.Redis, queue: str, unacked: str, index: str) -> None:
    """What a worker does with each message: take it off the queue, acknowledge it (kombu's keys)."""
    while True:
        popped = client.rpop(queue, BATCH)
        if not popped:
            return
        tags = [json.loads(message)["properties"]["delivery_tag"] for message in popped]
        pipe = client.pipeline(transaction=False)
        pipe.hdel(unacked, *tags)
        pipe.zrem(index, *tags)
        pipe.execute()


def _remove_prefixed(client: redis.Redis, prefix: str) -> None:
    names = list(client.scan_iter(match=prefix + "*", count=1000))
    for start in range(0, len(names), 1000):
        client.delete(*names[start:start + 1000])


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of its own, with the broker's shipped settings (noeviction among them), for the run."""
    with tempfile.TemporaryDirectory(prefix="recvault-memory-") as directory:
        server = RedisServer(directory)
        with server.start(timeout=30):
            yield server.url + "/0"


def report(result: dict, plan: dict, *, default_ttl: int) -> str:
    """The figures as text: bytes per callback, then the sizing."""
    usage, used = result["memory_usage_bytes"], result["used_memory_per_callback"]
    lines = [
        f"{result['count']} callbacks, message {result['message_bytes']} bytes, "
        f"dedup TTL {result['dedup_ttl_seconds']} s (default {default_ttl} s)",
        "MEMORY USAGE per callback, bytes:",
        f"  dedup key            {usage['dedup_key']:8.1f}",
        f"  queue entry          {usage['queue_entry']:8.1f}",
        f"  unacked record       {usage['unacked_record']:8.1f}",
        f"  unacked index entry  {usage['unacked_index_entry']:8.1f}",
        "INFO used_memory per callback, bytes:",
        f"  queued (not yet taken)        {used['queued']:8.1f}",
        f"  acknowledged (dedup key only) {used['acknowledged']:8.1f}",
        f"At {plan['per_day']:,} callbacks a day:",
        f"  dedup keys alive   {plan['dedup_keys_alive']:,} ({plan['dedup_bytes'] / 2**20:,.1f} MiB)",
        f"  queue backlog      {plan['backlog_bytes_per_hour_of_worker_outage'] / 2**20:,.1f} MiB "
        "per hour the workers fall behind",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    default_ttl = Settings.model_fields["dedup_ttl_seconds"].default
    parser = argparse.ArgumentParser(prog="python -m bench.redis_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="callbacks to queue (default 20000)")
    parser.add_argument("--url", help="an existing Redis (keys go under a prefix of their own and are removed)")
    parser.add_argument("--dedup-ttl", type=int, default=default_ttl,
                        help="dedup TTL in seconds (default: the setting's)")
    parser.add_argument("--per-day", type=int, default=1_000_000, help="callbacks a day to size for")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    if args.url:
        result = measure(args.url, args.count, dedup_ttl=args.dedup_ttl, prefix=f"memory-{secrets.token_hex(4)}:")
    else:
        with private_redis() as url:
            result = measure(url, args.count, dedup_ttl=args.dedup_ttl)
    plan = sizing(result, args.per_day)
    print(json.dumps({**result, "sizing": plan}) if args.json else report(result, plan, default_ttl=default_ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
