"""The fence around kombu's Redis transport internals that recvault's queue writer relies on.

Ingest writes Celery messages into Redis itself (see writer.py for why), so it must put
them exactly where kombu's Redis transport looks and in the shape it reads:

* the queue is a Redis list named after the queue (priority 0 has no suffix);
* a message is kombu's JSON envelope with a base64 body;
* unacknowledged messages live in a hash (delivery tag → [message, exchange, routing key])
  and a sorted set (delivery tag → time taken), named by the `unacked_key` and
  `unacked_index_key` transport options;
* `global_keyprefix` is put in front of every key kombu touches.

Everything here is read from the transport options the Celery app is configured with, and
options that would move messages somewhere this module does not know are refused at
start. `tests/queue/test_kombu_contract.py` checks it against the real kombu; the version
bounds in pyproject.toml are the versions that test covers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recvault.errors import ConfigurationError

# kombu's own defaults for the unacknowledged-message keys.
DEFAULT_UNACKED_KEY = "unacked"
DEFAULT_UNACKED_INDEX_KEY = "unacked_index"
# Ours, beside kombu's keys and under the same global prefix.
DEDUP_KEY_PREFIX = "recvault:seen:"
# Ours too: a counter the writer bumps before WAIT (see writer.py).
FENCE_KEY = "recvault:replication-fence"

# A "pending" record: a message recvault queued and no worker has taken yet. Its score in
# the unacknowledged index is this offset plus the time it was queued — far beyond any
# "taken at" time, so kombu's restore (scores older than now − visibility timeout) never
# hands out a message that is merely waiting in the queue, however long the backlog. When a
# worker takes it, kombu rewrites the score with the time taken and its normal visibility
# rules apply; the heartbeat (heartbeat.py) restores pending records whose message a worker took
# off the queue but died before recording.
PENDING_OFFSET = 10**12


def pending_score(queued_at: float) -> float:
    return PENDING_OFFSET + queued_at


# Sets the dedup key and, only if it was new, pushes the message onto the queue and records
# it as unacknowledged in kombu's shape: hash value [message, exchange "", routing key],
# with a pending score. A callback also gets its row in the accepted-callback ledger
# (audit.ledger), in the same step; other messages pass an empty row.
# KEYS: dedup, queue, unacked, unacked_index, ledger stream.
# ARGV: dedup TTL, message, dedup value, delivery tag, pending score, routing key (JSON string), ledger row.
ENQUEUE_ONCE = """
if redis.call('SET', KEYS[1], ARGV[3], 'NX', 'EX', tonumber(ARGV[1])) then
  redis.call('LPUSH', KEYS[2], ARGV[2])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
  redis.call('HSET', KEYS[3], ARGV[4], '[' .. ARGV[2] .. ',"",' .. ARGV[6] .. ']')
  if ARGV[7] ~= '' then
    redis.call('XADD', KEYS[5], '*', 'r', ARGV[7])
  end
  return 1
end
return 0
"""

# ENQUEUE_ONCE for a whole batch in one call, its text reused unchanged as a function: redis-py
# then encodes one command and parses one reply per batch instead of per message, which cost
# ingest's hand-off thread about 25 µs of CPU per callback.
# KEYS: ENQUEUE_ONCE's KEYS of each message in turn. ARGV: the number of KEYS and of ARGV per
# message, then ENQUEUE_ONCE's ARGV of each message in turn. Returns ENQUEUE_ONCE's answer
# (1 queued, 0 already seen) per message.
ENQUEUE_BATCH = "local function enqueue_once(KEYS, ARGV)\n" + ENQUEUE_ONCE + """end
local key_count, arg_count = tonumber(ARGV[1]), tonumber(ARGV[2])
local answers = {}
for i = 0, (#ARGV - 2) / arg_count - 1 do
  local keys, args = {}, {}
  for k = 1, key_count do keys[k] = KEYS[i * key_count + k] end
  for a = 1, arg_count do args[a] = ARGV[2 + i * arg_count + a] end
  answers[i + 1] = enqueue_once(keys, args)
end
return answers
"""

# Restores one pending record whose message is no longer on the queue (taken by a worker
# that died before kombu recorded it): pushes the message back where BRPOP takes it next
# and marks it pending again. Does nothing if a worker took it meanwhile (score rewritten),
# it was acknowledged (gone), it is not old enough, or it still waits in the queue.
# KEYS: queue, unacked, unacked_index. ARGV: delivery tag, newest pending score to restore,
# new pending score, routing key (JSON string), PENDING_OFFSET.
RESTORE_LOST_PENDING = """
local score = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not score or tonumber(score) < tonumber(ARGV[5]) or tonumber(score) > tonumber(ARGV[2]) then
  return 0
end
local record = redis.call('HGET', KEYS[2], ARGV[1])
if not record then
  return 0
end
local tail = ',"",' .. ARGV[4] .. ']'
local message = string.sub(record, 2, string.len(record) - string.len(tail))
if redis.call('LPOS', KEYS[1], message, 'RANK', -1) then
  return 0
end
redis.call('RPUSH', KEYS[1], message)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
"""

# Options the writer follows: they name the keys it writes.
FOLLOWED = frozenset({"global_keyprefix", "unacked_key", "unacked_index_key"})
# Options that change how kombu connects, consumes or restores, never where a message lives.
NEUTRAL = frozenset({
    "visibility_timeout", "socket_timeout", "socket_connect_timeout", "socket_keepalive",
    "socket_keepalive_options", "health_check_interval", "retry_on_timeout", "max_connections",
    "client_name", "unacked_mutex_key", "unacked_mutex_expire", "unacked_restore_limit",
    "unacked_restore_interval", "unacked_restore_throttle", "queue_order_strategy",
    "priority_steps", "sep", "fanout_prefix", "fanout_patterns", "polling_interval",
    "master_name", "sentinel_kwargs", "min_other_sentinels", "deadletter_queue", "confirm_publish",
})
# Options accepted only with the value the writer produces.
PINNED: dict[str, Any] = {"ack_emulation": True, "body_encoding": "base64"}


def check_transport_options(options: Mapping[str, Any]) -> None:
    """Refuse transport options under which ingest's messages would be lost or unreadable."""
    for name, value in options.items():
        if name in FOLLOWED or name in NEUTRAL:
            continue
        if name in PINNED:
            if value != PINNED[name]:
                raise ConfigurationError(
                    f"RECVAULT_BROKER_TRANSPORT_OPTIONS: {name}={value!r} is not supported; "
                    f"ingest writes messages for {name}={PINNED[name]!r}"
                )
            continue
        raise ConfigurationError(
            f"RECVAULT_BROKER_TRANSPORT_OPTIONS: option {name!r} is not supported by recvault's queue writer"
        )


@dataclass(frozen=True)
class RedisKeys:
    """Where kombu's Redis transport keeps one queue's messages, as the writer must write them."""

    queue: str
    unacked: str
    unacked_index: str
    dedup_prefix: str
    fence: str
    # kombu's global_keyprefix, which recvault's own keys share.
    prefix: str = ""

    def recvault(self, name: str) -> str:
        """A key of recvault's own beside the queue (dedup marks, delivery counts)."""
        return f"{self.prefix}recvault:{name}"

    @classmethod
    def for_queue(cls, queue: str, options: Mapping[str, Any]) -> RedisKeys:
        check_transport_options(options)
        prefix = str(options.get("global_keyprefix") or "")
        return cls(
            queue=prefix + queue,
            unacked=prefix + str(options.get("unacked_key") or DEFAULT_UNACKED_KEY),
            unacked_index=prefix + str(options.get("unacked_index_key") or DEFAULT_UNACKED_INDEX_KEY),
            dedup_prefix=prefix + DEDUP_KEY_PREFIX,
            fence=prefix + FENCE_KEY,
            prefix=prefix,
        )


def envelope(body: Any, headers: dict[str, Any], properties: dict[str, Any], *,
             routing_key: str, delivery_tag: str) -> str:
    """A Celery message in kombu's Redis envelope, JSON-serialized, as LPUSHed by kombu."""
    encoded = base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()
    return envelope_text(encoded, headers, properties, routing_key=routing_key, delivery_tag=delivery_tag)


def envelope_text(encoded_body: str, headers: dict[str, Any], properties: dict[str, Any], *,
                  routing_key: str, delivery_tag: str) -> str:
    """The envelope around a body already JSON-encoded and base64-encoded."""
    return json.dumps({
        "body": encoded_body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": routing_key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": delivery_tag,
        },
    }, separators=(",", ":"))
