"""kombu's Redis transports with one defect worked around: a channel closed after its connection.

When the broker connection drops under a Celery worker (a Redis restart, a Sentinel
failover), Celery's consumer restarts: it collects the old kombu Connection, then closes it.
kombu's Redis channel (kombu 5.7, `kombu/transport/redis.py`) does not survive that pair:

1. the first close reads the pending BRPOP reply (`Channel.close` → `_brpop_read`), which
   raises the connection error, so the channel is left open, its messages still held;
2. `Connection.collect` then detaches the transport (`transport.client = None`);
3. the second close drops the channel's pool (`_disconnect_pools`) and restores the held
   messages (`QoS.restore_unacked`), which needs a client, so a new pool, built from
   `self.connection.client`, now None: `_connparams` raises
   `AttributeError: 'NoneType' object has no attribute 'hostname'`.

That AttributeError is no connection error, so it escapes Celery's reconnect logic and
stops the worker ("Unrecoverable error") whenever it held a message (a running task, one
waiting for its ETA) when the broker went away. The same rebuild from a detached connection
is celery/kombu#582 and #970; a task that finishes after the reconnect meets it again when
it acknowledges its message on the old channel.

The channels here change two things and nothing else:

* a channel being closed keeps its (disconnected) connection pool instead of dropping it,
  so what it still has to do — restore its held messages now, acknowledge the messages of
  tasks that finish after the reconnect — connects again through the pool it always had (a
  Sentinel pool asks the sentinels for the master, so it follows a failover), rather than
  through one rebuilt from the closed connection's settings; kombu built a new pool for
  that anyway, from the same settings, while the connection was still attached;
* a pool that must still be built after the connection is gone fails with a connection
  error (redis-py's `ConnectionError`, one of the transport's `connection_errors`), which
  Celery handles like the broker being away, instead of an AttributeError.

`install()` points kombu's `redis`, `rediss` and `sentinel` URL schemes at these transports
(kombu re-reads the scheme of each Sentinel URL it fails over to, so naming a transport class
in Celery's configuration would not last). `tests/queue/test_kombu_contract.py` checks both
the defect in the installed kombu and the workaround; `pyproject.toml` bounds kombu to the
minor version that test covers.
"""

from __future__ import annotations

from typing import Any

import kombu.transport
import redis
from kombu.transport import redis as kombu_redis

# The URL schemes kombu maps to its Redis transports, and the transport each maps to here.
SCHEMES = {"redis": "Transport", "rediss": "Transport", "sentinel": "SentinelTransport"}


class _ClosedChannelGuard:
    """What the two channels below change in kombu's Redis channel (see the module docstring)."""

    # kombu's attributes, set by its Channel.
    _pool: Any
    _closing: bool
    connection: Any

    def _disconnect_pools(self) -> None:
        # While the channel closes, keep its pool (disconnected: redis-py connects again on
        # the next command) for the restore and the acknowledgements still to come.
        keep = self._pool if self._closing else None
        super()._disconnect_pools()  # type: ignore[misc]
        if keep is not None:
            self._pool = keep

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or getattr(transport, "client", None) is None:
            raise redis.ConnectionError("the broker connection this channel belonged to is closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class Channel(_ClosedChannelGuard, kombu_redis.Channel):
    """kombu's Redis channel, safe to close after its connection (see the module docstring)."""


class SentinelChannel(_ClosedChannelGuard, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel, safe to close after its connection (see the module docstring)."""


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


def install() -> None:
    """Make kombu use these transports for redis://, rediss:// and sentinel:// URLs (idempotent)."""
    # kombu caches the class it resolved for each name (a private dict the contract test covers).
    resolved: dict[str | None, Any] = vars(kombu.transport)["_transport_cache"]
    for scheme, name in SCHEMES.items():
        kombu.transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:{name}"
        resolved.pop(scheme, None)
