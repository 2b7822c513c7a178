"""One way to get a redis-py client for the configured broker, reaching it as Celery's workers do.

Celery's Redis transport accepts three URL forms, and so does everything in recvault that
talks to the broker directly (ingest's queue writer, the dead-letter store, `recvault up`):

* `redis://[user:password@]host[:port][/db]`;
* `rediss://…` — TLS, with `ssl_cert_reqs` (`required`, `optional`, `none`), `ssl_ca_certs`,
  `ssl_certfile`, `ssl_keyfile` and `ssl_check_hostname` in the query. Without `ssl_cert_reqs`
  the server's certificate is verified (redis-py's default); Celery is handed the same URL
  with `ssl_cert_reqs=required` spelled out, since kombu would otherwise not verify it;
* `sentinel://host:port;sentinel://host:port;…` with `master_name` (and optionally
  `sentinel_kwargs`, `min_other_sentinels`) in the transport options. The first URL carries
  the master's password, database and TLS query, as kombu reads it. Every new connection asks
  the sentinels for the current master, so a failover is followed without a restart.

A URL recvault cannot use is refused at start with one line naming RECVAULT_BROKER_URL.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.sentinel import Sentinel

from recvault.errors import ConfigurationError

SCHEMES = ("redis", "rediss", "sentinel")
# Redis's and Redis Sentinel's well-known ports, the defaults kombu and redis-py assume.
REDIS_PORT = 6379
SENTINEL_PORT = 26379
# The TLS query parameters kombu moves into its `ssl` options (kombu.utils.url.parse_url).
SSL_PARAMETERS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
# kombu's spellings of ssl_cert_reqs and the ssl module's constants they stand for.
CERT_REQS = {
    "required": ssl.CERT_REQUIRED, "CERT_REQUIRED": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL, "CERT_OPTIONAL": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE, "CERT_NONE": ssl.CERT_NONE,
}
VARIABLE = "RECVAULT_BROKER_URL"


def _refuse(problem: str) -> ConfigurationError:
    return ConfigurationError(f"{VARIABLE}: {problem}")


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and how to connect: host (or sentinels), database, credentials, TLS."""

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: dict[str, Any] = field(default_factory=dict)  # redis-py ssl_* arguments; empty for plain TCP
    master_name: str | None = None
    sentinel_kwargs: dict[str, Any] | None = field(default=None, repr=False)
    min_other_sentinels: int = 0

    @property
    def sentinel(self) -> bool:
        return self.scheme == "sentinel"

    @classmethod
    def parse(cls, url: str, options: Mapping[str, Any]) -> BrokerAddress:
        """The address a broker URL and its transport options name; ConfigurationError if unusable."""
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        if scheme not in SCHEMES:
            raise _refuse("must be a redis://, rediss:// or sentinel://host:port;sentinel://… URL")
        parts = [part.strip() for part in url.split(";") if part.strip()]
        if scheme != "sentinel" and len(parts) > 1:
            raise _refuse("several hosts separated by ';' are only understood with sentinel:// URLs")
        first = urlsplit(parts[0])
        hosts = tuple(_host_port(part, scheme) for part in parts)
        tls = _tls_arguments(first.query, scheme)
        if scheme == "sentinel":
            master_name = options.get("master_name")
            if not isinstance(master_name, str) or not master_name:
                raise _refuse('sentinel:// needs the master\'s name: RECVAULT_BROKER_TRANSPORT_OPTIONS='
                              '{"master_name": "mymaster"}')
            sentinel_kwargs = options.get("sentinel_kwargs")
            if sentinel_kwargs is not None and not isinstance(sentinel_kwargs, dict):
                raise ConfigurationError("RECVAULT_BROKER_TRANSPORT_OPTIONS: sentinel_kwargs must be a JSON object")
        else:
            master_name, sentinel_kwargs = None, None
        return cls(
            scheme=scheme, hosts=hosts, db=_database(first.path), username=unquote(first.username or "") or None,
            password=unquote(first.password or "") or None, tls=tls, master_name=master_name,
            sentinel_kwargs=sentinel_kwargs, min_other_sentinels=int(options.get("min_other_sentinels") or 0),
        )

    def client(self, *, socket_timeout: float, socket_connect_timeout: float, fail_fast: bool = False,
               socket_keepalive: bool = True, client_name: str | None = None) -> redis.Redis:
        """A redis-py client for the broker (the current master, with Sentinel).

        `fail_fast` turns off redis-py's own retries, so a failed command raises at once.
        """
        kwargs: dict[str, Any] = {
            "db": self.db, "username": self.username, "password": self.password,
            "socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout,
            "socket_keepalive": socket_keepalive, "client_name": client_name, **self.tls,
        }
        if fail_fast:
            kwargs["retry"] = None  # redis-py: no retry at all (its default retries with backoff)
        if not self.sentinel:
            host, port = self.hosts[0]
            return redis.Redis(host=host, port=port, **kwargs)
        assert self.master_name is not None  # parse() guarantees it
        sentinels = Sentinel(
            list(self.hosts), min_other_sentinels=self.min_other_sentinels, sentinel_kwargs=self.sentinel_kwargs,
            # Without sentinel_kwargs, redis-py gives the sentinel connections these timeouts too.
            socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout,
        )
        # SentinelConnectionPool asks the sentinels for the master on every new connection.
        return sentinels.master_for(self.master_name, **kwargs)


def celery_broker_url(url: str) -> str:
    """The URL to hand Celery: a rediss:// URL gets `ssl_cert_reqs=required` unless it names one.

    kombu connects to a rediss:// URL without `ssl_cert_reqs` with no certificate check at all;
    recvault's own clients verify, and the workers must verify the same server the same way.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "rediss" or "ssl_cert_reqs" in dict(parse_qsl(parts.query)):
        return url
    query = urlencode([*parse_qsl(parts.query), ("ssl_cert_reqs", "required")])
    return urlunsplit(parts._replace(query=query))


def broker_client(url: str, options: Mapping[str, Any], *, socket_timeout: float, socket_connect_timeout: float,
                  fail_fast: bool = False) -> redis.Redis:
    """A redis-py client for the broker `url` and transport `options` name, as Celery reaches it."""
    return BrokerAddress.parse(url, options).client(
        socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout, fail_fast=fail_fast,
        socket_keepalive=bool(options.get("socket_keepalive", True)), client_name=options.get("client_name"),
    )


def _host_port(part: str, scheme: str) -> tuple[str, int]:
    """(host, port) of one URL; every part of a sentinel URL list must itself be sentinel://."""
    split = urlsplit(part)
    if split.scheme.lower() != scheme:
        raise _refuse(f"every ';'-separated part must be a {scheme}:// URL (found {split.scheme or 'none'}://)")
    try:
        port = split.port
    except ValueError:
        raise _refuse(f"{split.hostname or 'a host'} has a port that is not a number from 1 to 65535") from None
    if not split.hostname:
        raise _refuse(f"a {scheme}:// URL without a host")
    return split.hostname, port or (SENTINEL_PORT if scheme == "sentinel" else REDIS_PORT)


def _database(path: str) -> int:
    """The database number from a URL path ('' and '/' are 0), as kombu reads it."""
    name = path.strip("/")
    if not name:
        return 0
    if not name.isdigit():
        raise _refuse(f"the database must be a number, not {name!r}")
    return int(name)


def _tls_arguments(query: str, scheme: str) -> dict[str, Any]:
    """redis-py's ssl_* arguments from the URL query; rediss:// always means TLS."""
    params = dict(parse_qsl(query))
    unknown = sorted(set(params) - set(SSL_PARAMETERS))
    if unknown:
        raise _refuse(f"unknown URL parameter {unknown[0]!r}; only {', '.join(SSL_PARAMETERS)} are understood")
    if scheme == "redis" and params:
        raise _refuse("TLS parameters need a rediss:// URL")
    if scheme == "redis" or (scheme == "sentinel" and not params):
        return {}
    tls: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    for name, value in params.items():
        if name == "ssl_cert_reqs":
            if value not in CERT_REQS:
                raise _refuse(f"ssl_cert_reqs must be required, optional or none, not {value!r}")
            tls[name] = CERT_REQS[value]
        elif name == "ssl_check_hostname":
            tls[name] = value.lower() != "false"
        else:
            tls[name] = value
    return tls
