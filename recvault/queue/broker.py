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
  the master's password, database and TLS query, as kombu reads it (another query on any
  other URL is refused: kombu would ignore it). Every new connection asks the sentinels for
  the current master, so a failover is followed without a restart. Sentinels that speak TLS
  are reached with `sentinel_kwargs` (`{"ssl": true, "ssl_ca_certs": …}`), as kombu and
  redis-py read it; without `socket_timeout`/`socket_connect_timeout` there, recvault's
  clients give the sentinel connections the timeouts they give the master's.

A URL recvault cannot use is refused at start with one line naming RECVAULT_BROKER_URL.
`check_tls`, run by `recvault serve` and `recvault worker` before they start, connects once
when TLS is configured and refuses TLS that cannot work — a CA, certificate or key file that
is missing, a certificate that does not verify, a TLS handshake that fails — with one line
naming RECVAULT_BROKER_URL (the master) or RECVAULT_BROKER_TRANSPORT_OPTIONS (the
sentinels). A broker that is merely down passes: ingest spools and workers retry until it
is back.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
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
OPTIONS_VARIABLE = "RECVAULT_BROKER_TRANSPORT_OPTIONS"
# The files redis-py opens to make a TLS connection, in the URL's query or in sentinel_kwargs.
TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
# The ssl_cert_reqs values redis-py understands, the only ones JSON can carry into sentinel_kwargs.
SENTINEL_CERT_REQS = ("none", "optional", "required")
# TLS errors of a connection cut short (a server restarting, a network drop): a retry may succeed.
CUT_SHORT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError,
             ssl.SSLWantWriteError)


def _refuse(problem: str) -> ConfigurationError:
    return ConfigurationError(f"{VARIABLE}: {problem}")


def _refuse_option(problem: str) -> ConfigurationError:
    return ConfigurationError(f"{OPTIONS_VARIABLE}: {problem}")


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

    @property
    def sentinels_use_tls(self) -> bool:
        """Whether the sentinels are reached over TLS (`"ssl": true` in sentinel_kwargs)."""
        return bool(self.sentinel_kwargs and self.sentinel_kwargs.get("ssl"))

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
                raise _refuse_option("sentinel_kwargs must be a JSON object")
            _check_sentinel_tls(sentinel_kwargs or {})
            if any(urlsplit(part).query not in ("", first.query) for part in parts[1:]):
                raise _refuse("the TLS query of a sentinel:// URL other than the first is ignored (kombu reads "
                              "the first one's only): put it on the first")
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
            list(self.hosts), min_other_sentinels=self.min_other_sentinels,
            sentinel_kwargs=self._sentinel_connection(socket_timeout, socket_connect_timeout),
            socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout,
        )
        # SentinelConnectionPool asks the sentinels for the master on every new connection.
        return sentinels.master_for(self.master_name, **kwargs)

    def _sentinel_connection(self, socket_timeout: float, socket_connect_timeout: float) -> dict[str, Any] | None:
        """sentinel_kwargs with this client's timeouts where they name none (redis-py gives sentinel
        connections none at all when sentinel_kwargs is set); None without sentinel_kwargs, when
        redis-py gives them the master's timeouts itself."""
        if self.sentinel_kwargs is None:
            return None
        return {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout,
                **self.sentinel_kwargs}

    def check_tls(self, *, socket_timeout: float, socket_connect_timeout: float) -> None:
        """Refuse TLS that cannot work, with one line naming the setting (ConfigurationError).

        Only with TLS configured, and then once: the files it names must be readable, and the
        first sentinel that answers (with Sentinel) and the broker must complete a TLS handshake
        whose certificate verifies. A broker or sentinel that is down or silent passes, as does any
        error a retry could cure: ingest spools and workers retry until the broker is back.
        """
        if not self.tls and not self.sentinels_use_tls:
            return
        _check_files(self.tls, VARIABLE, "")
        _check_files(self.sentinel_kwargs or {}, OPTIONS_VARIABLE, "sentinel_kwargs ")
        if self.sentinel:
            master = self._master_from_sentinels(socket_timeout, socket_connect_timeout)
            if master is None or not self.tls:
                return  # no sentinel answered, or the master speaks plain TCP: nothing more to check
            where = f"the master {master[0]}:{master[1]} (as the sentinels name it)"
        else:
            where = "the broker {}:{}".format(*self.hosts[0])
        client = self.client(socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout,
                             fail_fast=True)
        try:
            client.ping()
        except redis.RedisError as error:
            failure = _tls_failure(error)
            if failure is not None:
                raise _refuse(f"TLS with {where} failed: {failure}, with {_trust(self.tls)}") from None
        finally:
            client.close()

    def _master_from_sentinels(self, socket_timeout: float, socket_connect_timeout: float) -> tuple[str, int] | None:
        """The master's address from the first sentinel that names it; ConfigurationError when TLS
        with a sentinel fails (on the first such failure: every sentinel is reached the same way)."""
        assert self.master_name is not None  # parse() guarantees it
        kwargs = self._sentinel_connection(socket_timeout, socket_connect_timeout) or {
            "socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout}
        for host, port in self.hosts:
            try:
                sentinel = redis.Redis(host, port, **{**kwargs, "retry": None})
            except TypeError as error:  # a name in sentinel_kwargs redis-py does not know
                raise _refuse_option(f"sentinel_kwargs: {error}") from None
            try:
                address = sentinel.sentinel_get_master_addr_by_name(self.master_name)
            except redis.RedisError as error:
                failure = _tls_failure(error)
                if failure is not None:
                    raise _refuse_option(f"TLS with sentinel {host}:{port} failed: {failure}, with sentinel_kwargs' "
                                         f"{_trust(self.sentinel_kwargs or {})}") from None
                continue
            finally:
                sentinel.close()
            if address:
                # redis-py types the reply loosely; it is (host, port), or None when no master is known.
                master_host, master_port = cast(tuple[Any, Any], address)
                host_text = master_host.decode() if isinstance(master_host, bytes) else str(master_host)
                return host_text, int(master_port)
        return None


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


def check_tls(url: str, options: Mapping[str, Any], *, socket_timeout: float, socket_connect_timeout: float) -> None:
    """At start: refuse the broker's TLS if it cannot work, with one line naming the setting.

    See BrokerAddress.check_tls; connects only when the URL or sentinel_kwargs asks for TLS.
    """
    BrokerAddress.parse(url, options).check_tls(socket_timeout=socket_timeout,
                                                socket_connect_timeout=socket_connect_timeout)


def _check_sentinel_tls(kwargs: Mapping[str, Any]) -> None:
    """sentinel_kwargs' TLS arguments are refused where redis-py would ignore or reject them."""
    named = sorted(name for name in kwargs if name.startswith("ssl_"))
    if named and not kwargs.get("ssl"):
        raise _refuse_option(f'sentinel_kwargs has {named[0]} but not "ssl": true, so the sentinels would be '
                             "reached without TLS")
    if kwargs.get("ssl_cert_reqs", "required") not in SENTINEL_CERT_REQS:
        raise _refuse_option(f"sentinel_kwargs' ssl_cert_reqs must be {', '.join(SENTINEL_CERT_REQS)}, "
                             f"not {kwargs['ssl_cert_reqs']!r}")


def _check_files(arguments: Mapping[str, Any], variable: str, where: str) -> None:
    """Every TLS file named in `arguments` is a file this process can read."""
    for name in TLS_FILES:
        path = arguments.get(name)
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise ConfigurationError(f"{variable}: {where}{name} names {path}, which is not a file this process "
                                     "can read")


def _trust(arguments: Mapping[str, Any]) -> str:
    """What a TLS connection made with `arguments` checks certificates against, for a message."""
    reqs = arguments.get("ssl_cert_reqs", ssl.CERT_REQUIRED)
    if reqs in (ssl.CERT_NONE, "none"):
        return "ssl_cert_reqs=none"
    return f"ssl_ca_certs={arguments['ssl_ca_certs']}" if arguments.get("ssl_ca_certs") else \
        "the system's CA certificates (no ssl_ca_certs)"


def _tls_failure(error: BaseException) -> str | None:
    """What failed, when `error` comes of a TLS failure every retry would meet again; else None."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its certificate did not verify ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, CUT_SHORT):
            return f"TLS could not be set up ({cause.reason or cause})"
        cause = cause.__cause__ or cause.__context__
    return None


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
