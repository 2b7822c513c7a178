"""recvault's one configuration, read from ``RECVAULT_*`` variables, the file `recvault up` leaves in the data
directory while it runs, and an optional ``.env``."""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from recvault import sids
from recvault.errors import ConfigurationError

# Twilio's regions and the REST API host of each: an account's API keys, Recording resources
# and RecordingUrls live in its region only.
REGION_API_HOSTS = {
    "us1": "api.twilio.com",
    "ie1": "api.dublin.ie1.twilio.com",
    "au1": "api.sydney.au1.twilio.com",
}
# How long a callback's dedup key lives. Twilio repeats a callback only within its 15-second
# answer window (retries included, `tt` at most 15 s), so an hour covers any retry of its with a
# wide margin, and a callback spooled through a short Redis outage still meets its key. A repeat
# arriving later is queued again and caught by the worker's create-only writes. Per key Redis
# spends about 170 bytes: an hour at a million callbacks a day is 42,000 keys, 7 MB.
DEDUP_TTL_SECONDS = 3600
# Values people paste from docs or templates instead of a real secret.
# RECVAULT_API_TOKEN's strength, in bits: its length times the bits a character carries in the
# smallest alphabet holding it — digits log2(10), hex 4, anything else 6 (base64url's 64 characters;
# wider alphabets are counted as base64url too). 128 bits: 32 hex or 22 base64url characters.
MIN_API_TOKEN_BITS = 128
# Fewest different characters a token may have: a random token of the shortest accepted length has
# fewer at most once in a billion (decimal digits), far more rarely in hex or base64url.
MIN_API_TOKEN_DISTINCT = 6
# RECVAULT_AUDIT_KEY's shortest length: 32 characters of a random key carry at least 128 bits.
MIN_AUDIT_KEY_LENGTH = 32
# Archives one worker runs at once when RECVAULT_WORKER_CONCURRENCY is unset. Archiving waits
# on Twilio and S3 far more than it computes, so a threads worker keeps tens in flight; a
# prefork worker runs one per process, and each process costs its own interpreter and clients.
DEFAULT_CONCURRENCY = {"threads": 24, "prefork": 2, "solo": 1}
# Processes one `recvault worker` starts when RECVAULT_WORKER_PROCESSES is unset: each in-flight
# archive holds its recording while it streams, so a process's memory bound caps its threads; two
# processes of 24 keep 48 archives in flight within 150 MB each (a prefork pool forks its own
# processes). About two thirds of an archive's time under Twilio-like latency is streaming, so
# 24 threads fill the byte budget (RECVAULT_WORKER_BUFFER_MIB) that 16 left part idle.
DEFAULT_PROCESSES = {"threads": 2, "prefork": 1, "solo": 1}
PLACEHOLDERS = {"changeme", "change-me", "your_auth_token", "xxx", "todo", "secret", "token"}
# Settings renamed so that their names carry their unit, old name → new name. For one release
# the old names still work, as RECVAULT_ variables (environment or .env) and as keywords: an
# old name's value is used unless the new name is set too, and every old name set is logged
# as a warning naming its replacement.
RENAMED = {
    "redis_socket_timeout": "redis_socket_timeout_seconds",
    "redis_connect_timeout": "redis_connect_timeout_seconds",
    "visibility_timeout": "visibility_timeout_seconds",
    "task_time_limit": "task_time_limit_seconds",
    "retry_backoff_max": "retry_backoff_max_seconds",
}
# RECVAULT_ variables that are not settings but are known: the test suite's own.
TEST_VARIABLES = frozenset({"RECVAULT_TEST_REDIS", "RECVAULT_FAULTS_REPORT"})
# RECVAULT_LOG_LEVEL's values (any case); WARN is taken as WARNING, as the logging module does.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Audit seal periods: at least 5 minutes (a seal, its system entry and its witness record per
# period), and a divisor of a day, so a period never straddles a UTC midnight.
MIN_SEAL_PERIOD_SECONDS = 300
SEAL_PERIOD_DAY = 86400

log = logging.getLogger(__name__)


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def env_name(field: str) -> str:
    """The RECVAULT_ variable that sets `field`."""
    return f"RECVAULT_{field.upper()}"


def _use_renamed(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with each old name of RENAMED moved to its new one (the new one wins), each logged."""
    data = dict(data)
    for old, new in RENAMED.items():
        if old not in data:
            continue
        value = data.pop(old)
        message = f"{env_name(old)} is deprecated; use {env_name(new)}"
        if new in data:
            message += f" ({env_name(new)} is set too and wins)"
        else:
            data[new] = value
        log.warning(message, extra={"deprecated": env_name(old), "replacement": env_name(new)})
    return data


class _RenamedVariables(PydanticBaseSettingsSource):
    """The old RECVAULT_ variables of RENAMED set in the environment or the .env file, by old name."""

    def __init__(self, settings_cls: type[BaseSettings], *sources: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._sources = [source for source in sources if isinstance(source, EnvSettingsSource)]

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # no field of its own: __call__ gives the old names

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for source in reversed(self._sources):  # the first source (the environment) wins
            for old in RENAMED:
                name = source.env_prefix + old
                value = source.env_vars.get(name if source.case_sensitive else name.lower())
                if value is not None:
                    found[old] = value
        return found


# The file `recvault up` writes into its data directory while it runs (RECVAULT_DATA_DIR/env, mode 0600):
# how to reach the services it started (broker, S3, the Twilio simulator) and its API token, as
# `export RECVAULT_…=…` lines. Every other recvault process that finds it under its data directory
# reads it: after the environment (a variable set there wins) and before .env.
UP_ENV_FILE = "env"


def _variable(source: EnvSettingsSource, field: str) -> str | None:
    """The raw value a source holds for `field`'s RECVAULT_ variable."""
    name = source.env_prefix + field
    return source.env_vars.get(name if source.case_sensitive else name.lower())


def up_env_path(init: PydanticBaseSettingsSource, env: PydanticBaseSettingsSource,
                dotenv: PydanticBaseSettingsSource, default_data_dir: Path) -> Path | None:
    """RECVAULT_DATA_DIR/env if that file exists, the data directory taken from the keywords, the
    environment or .env (in that order); None when it does not, or when env files are off (_env_file=None)."""
    if isinstance(dotenv, DotEnvSettingsSource) and dotenv.env_file is None:
        return None
    data_dir = init.init_kwargs.get("data_dir") if isinstance(init, InitSettingsSource) else None
    for source in (env, dotenv):
        if data_dir is None and isinstance(source, EnvSettingsSource):
            data_dir = _variable(source, "data_dir") or None
    path = Path(data_dir or default_data_dir) / UP_ENV_FILE
    return path if path.is_file() else None


def api_token_weakness(token: str) -> str | None:
    """Why `token` cannot be RECVAULT_API_TOKEN (never quoting it), or None when it can.

    Bits are counted as MIN_API_TOKEN_BITS says; a token must also look random: at least
    MIN_API_TOKEN_DISTINCT different characters, and not one block repeated (`abcabcabc…`).
    """
    if not re.fullmatch(r"[\x21-\x7e]+", token):
        return "must be printable ASCII, without spaces"
    alphabet = 10 if token.isdigit() else 16 if re.fullmatch(r"[0-9a-fA-F]+", token) else 64
    bits = int(len(token) * math.log2(alphabet))
    if bits < MIN_API_TOKEN_BITS:
        needed = math.ceil(MIN_API_TOKEN_BITS / math.log2(alphabet))
        kind = {10: "digits", 16: "hex characters", 64: "characters"}[alphabet]
        return (f"too weak: {len(token)} {kind}, about {bits} bits; at least {MIN_API_TOKEN_BITS} bits are "
                f"required ({needed} {kind} or more of a random token, e.g. `openssl rand -hex 32`)")
    repeated = any(token == (token[:size] * (len(token) // size + 1))[:len(token)]
                   for size in range(1, len(token) // 2 + 1))
    if len(set(token)) < MIN_API_TOKEN_DISTINCT or repeated:
        return ("too weak: it does not look random (too few different characters, or a repeated "
                "pattern); generate one, e.g. `openssl rand -hex 32`")
    return None


def _reject_placeholder(secret: SecretStr, name: str) -> SecretStr:
    raw = secret.get_secret_value()
    if not raw.strip():
        raise ValueError(f"{name} is empty")
    if raw.strip().lower() in PLACEHOLDERS or set(raw) <= {"x", "X", "*"}:
        raise ValueError(f"{name} looks like a placeholder, not a real secret")
    return secret


class Settings(BaseSettings):
    """Everything recvault's processes need; entrypoints build it once and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="RECVAULT_", env_file=".env", extra="ignore", frozen=True
    )
    # Whether the file `recvault up` leaves in the data directory (UP_ENV_FILE) is read.
    reads_up_env_file: ClassVar[bool] = True

    # --- ingest ---------------------------------------------------------------
    public_url: AnyHttpUrl | None = Field(
        default=None,
        description="Base URL Twilio calls (scheme://host[:port]); used to rebuild the signed URL.",
    )
    trust_forwarded_headers: bool = Field(
        default=False,
        description="Trust the X-Forwarded-* headers of the proxy in front: callbacks' signed URL "
        "(X-Forwarded-Proto/Host), and on the operations routes the client's address (X-Forwarded-For) and "
        "whether the request came over TLS (X-Forwarded-Proto: the login cookie is then Secure).",
    )
    twilio_auth_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Auth Tokens, current first, comma-separated."
    )
    twilio_account_sid: str | None = None
    twilio_subaccount_tokens: dict[str, list[SecretStr]] = Field(
        default_factory=dict, description='JSON: {"AC…": ["token", "secondary"]}.'
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    idle_timeout_seconds: float = Field(
        default=15.0, gt=0, le=3600,
        description="Seconds a connection may wait for a complete request's headers (idle keep-alive "
        "included); Twilio waits 15 s for a whole answer. Behind a load balancer, set it above the "
        "balancer's idle timeout.",
    )
    dedup_ttl_seconds: int = Field(
        default=DEDUP_TTL_SECONDS, ge=60,
        description="How long ingest remembers a (RecordingSid, RecordingStatus) to refuse its repeats.",
    )
    publish_timeout_seconds: float = Field(default=2.0, gt=0, le=10)
    spool_max_bytes: int | None = Field(
        default=None, ge=64 * 1024,
        description="Largest the ingest spool may grow; past it, as on a full disk, callbacks go to "
        "Redis or are refused with 503. Default: the disk's free space.",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Shared Prometheus directory; `serve --processes N` and `worker` set it for their processes.",
    )

    # --- operations routes (/status, /api/…) -----------------------------------
    api_token: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer token of the operations routes; empty: they answer 404.",
    )
    media_playback: bool = Field(
        default=True,
        description="Whether /api/recordings/{sid}/media hands out presigned URLs (else 403).",
    )
    identity_header: str = Field(
        default="",
        description="Header an authenticating proxy in front of the operations routes names the signed-in "
        "person with (oauth2-proxy: X-Forwarded-Email); it then names them in the audit trail. Empty: off. "
        "Set it only when that proxy is the one way to the operations routes (see RECVAULT_OPS_PORT).",
    )
    forwarded_for_hops: int = Field(
        default=1, ge=1, le=16,
        description="Proxies in front of ingest that each append to X-Forwarded-For (with "
        "RECVAULT_TRUST_FORWARDED_HEADERS): the client's address is the entry this far from the right.",
    )
    ops_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="Port of a listener of its own for the operations routes; set, they are served only "
        "there, and the port Twilio calls keeps the callback route, /healthz, /readyz and /metrics.",
    )
    ops_host: str | None = Field(
        default=None, description="Address the operator listener (RECVAULT_OPS_PORT) binds; default: serve's --host."
    )

    # --- Twilio API -----------------------------------------------------------
    twilio_region: Literal["us1", "ie1", "au1"] = Field(
        default="us1", description="Twilio region: sets the API base and the media-host allowlist together."
    )
    twilio_api_base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://api.twilio.com"),
        description="Twilio REST API base; default: the region's API host.",
    )
    twilio_api_key_sid: str | None = None
    twilio_api_key_secret: SecretStr | None = None
    media_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [REGION_API_HOSTS["us1"]],
        description="Hosts a RecordingUrl may point at (credentials are sent there).",
    )
    media_format: Literal["wav", "mp3"] = "wav"
    delete_after_archive: bool = False
    not_found_grace_seconds: int = Field(
        default=900, ge=0, description="How long a 404 after `completed` counts as 'not yet'."
    )
    price_refresh_seconds: int = Field(default=600, ge=1, description="Delay between price re-fetches.")
    price_refresh_attempts: int = Field(default=6, ge=1)

    # --- Celery / Redis -------------------------------------------------------
    broker_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="redis://, rediss:// (TLS) or sentinel://host:port;sentinel://host:port;… (with "
        "master_name in the transport options); recvault.queue.broker reads it.",
    )
    broker_transport_options: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON merged into Celery's broker_transport_options (ingest follows it too).",
    )
    broker_wait_replicas: int | None = Field(
        default=None, ge=0, le=16,
        description="Replicas that must hold a batch before ingest answers (Redis WAIT), else it is "
        "spooled; default 1 with sentinel:// URLs, 0 otherwise.",
    )
    queue: str = "recvault"
    redis_socket_timeout_seconds: float = Field(default=5.0, gt=0)
    redis_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    broker_start_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="How long `recvault worker` waits at start for the broker to answer before it exits 1 "
        "with one line naming RECVAULT_BROKER_URL; once it consumes, it waits for the broker however long.",
    )
    visibility_timeout_seconds: int = Field(
        default=30, ge=6,
        description="Seconds without a worker's heartbeat before its messages go to another worker.",
    )
    task_time_limit_seconds: int = Field(default=3 * 3600, ge=5)
    max_retries: int = Field(default=12, ge=0)
    retry_backoff_max_seconds: int = Field(default=600, ge=1)
    worker_pool: Literal["threads", "prefork", "solo"] = Field(
        default="threads",
        description="Celery pool: threads (many archives in flight per process), prefork or solo.",
    )
    worker_concurrency: int | None = Field(
        default=None, ge=1, le=256,
        description="Archives in flight per worker process (threads pool; default 24), or pool "
        "processes (prefork; default 2).",
    )
    worker_processes: int | None = Field(
        default=None, ge=1, le=64,
        description="Worker processes one `recvault worker` starts (threads pool; default 2).",
    )
    worker_metrics_port: int = Field(
        default=9808, ge=0, le=65535,
        description="Port of each worker host's Prometheus /metrics listener; 0 turns it off.",
    )
    worker_metrics_host: str = Field(default="0.0.0.0", description="Address the worker's /metrics listens on.")
    task_events: bool = Field(
        default=True, description="Workers send Celery task events (for `celery events` and Flower)."
    )

    # --- S3 -------------------------------------------------------------------
    s3_bucket: str = "recvault"
    s3_endpoint_url: AnyHttpUrl | None = None
    s3_prefix: str = ""
    s3_region: str = "us-east-1"
    s3_part_size_mib: int = Field(default=8, ge=5, le=512)
    worker_buffer_mib: int = Field(
        default=28, ge=8, le=4096,
        description="Recording bytes one worker process holds in memory at once, over all its archives "
        "in flight (a small recording whole, a large one a few parts); archives wait for room.",
    )
    s3_create_bucket: bool = False
    s3_kms_key_id: str | None = Field(
        default=None,
        description="KMS key (id, ARN or alias) `init-bucket` makes the bucket's default encryption; "
        "unset: SSE-S3 (AES256).",
    )

    # --- audit trail -----------------------------------------------------------
    seal_period_seconds: int = Field(
        default=3600,
        description="Length of the period each audit seal covers: at least 300 s, and a divisor of 86400 "
        "(a period never straddles a UTC midnight).",
    )
    seal_witness: str = Field(
        default="",
        description="Where a record of each seal goes, outside the bucket: s3://bucket/prefix (a bucket with "
        "Object Lock) or a file path (one JSON line per seal); empty: no witness.",
    )

    audit_key: SecretStr = Field(
        default=SecretStr(""),
        description="Key every audit entry is authenticated with (HMAC-SHA256), kept outside the bucket: at least "
        f"{MIN_AUDIT_KEY_LENGTH} characters. Empty: entries carry no MAC.",
    )
    audit_key_since: datetime | None = Field(
        default=None,
        description="ISO 8601 time with its UTC offset: entries stamped before it may lack a MAC under "
        "RECVAULT_AUDIT_KEY (written before that key). Empty: every entry must carry one.",
    )

    # --- policy and local state ----------------------------------------------
    policy_file: Path | None = None
    data_dir: Path = Path(".recvault")
    log_level: str = Field(default="INFO", description=f"One of {', '.join(LOG_LEVELS)} (any case).")
    log_format: Literal["json", "text", "auto"] = Field(
        default="auto", description="json, text, or auto: text on a terminal, JSON otherwise.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        renamed = _RenamedVariables(settings_cls, env_settings, dotenv_settings)
        sources = [init_settings, env_settings, renamed, dotenv_settings, file_secret_settings]
        path = up_env_path(init_settings, env_settings, dotenv_settings, cls.model_fields["data_dir"].default)
        if cls.reads_up_env_file and path is not None:
            # What the running `recvault up` says wins over .env: it is what its services use.
            sources.insert(3, DotEnvSettingsSource(settings_cls, env_file=path))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _renamed_settings(cls, data: Any) -> Any:
        return _use_renamed(data) if isinstance(data, dict) else data

    @model_validator(mode="before")
    @classmethod
    def _region_defaults(cls, data: Any) -> Any:
        """The region's API host is the default API base and media host (explicit values win)."""
        if isinstance(data, dict):
            region = str(data.get("twilio_region") or "us1").lower()
            host = REGION_API_HOSTS.get(region)
            if host is not None:
                data = {**data, "twilio_region": region}
                data.setdefault("twilio_api_base_url", f"https://{host}")
                data.setdefault("media_hosts", host)
        return data

    @field_validator("twilio_auth_tokens", mode="before")
    @classmethod
    def _tokens_from_commas(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("media_hosts", mode="before")
    @classmethod
    def _hosts_from_commas(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("twilio_auth_tokens")
    @classmethod
    def _tokens_are_real(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        return [_reject_placeholder(t, "RECVAULT_TWILIO_AUTH_TOKENS") for t in tokens]

    @field_validator("api_token")
    @classmethod
    def _api_token_is_real(cls, token: SecretStr) -> SecretStr:
        if not token.get_secret_value():
            return token  # off
        _reject_placeholder(token, "RECVAULT_API_TOKEN")
        weakness = api_token_weakness(token.get_secret_value())
        if weakness is not None:
            raise ValueError(weakness)
        return token

    @field_validator("identity_header")
    @classmethod
    def _identity_header_name(cls, name: str) -> str:
        name = name.strip()
        if name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", name):
            raise ValueError("must be an HTTP header name (letters, digits and '-'), e.g. X-Forwarded-Email")
        if name.lower() in {"authorization", "cookie", "host", "x-forwarded-for", "x-recvault-user"}:
            raise ValueError(f"{name} cannot name the person: use the header the proxy sets, e.g. X-Forwarded-Email")
        return name

    @field_validator("twilio_account_sid")
    @classmethod
    def _account_sid_format(cls, sid: str | None) -> str | None:
        return None if sid is None else sids.check_sid(sid, sids.ACCOUNT, "RECVAULT_TWILIO_ACCOUNT_SID")

    @field_validator("twilio_subaccount_tokens")
    @classmethod
    def _subaccounts_valid(cls, table: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        for sid, tokens in table.items():
            sids.check_sid(sid, sids.ACCOUNT, f"key {sid!r}")
            if not tokens:
                raise ValueError(f"{sid} has no token")
            for token in tokens:
                _reject_placeholder(token, "RECVAULT_TWILIO_SUBACCOUNT_TOKENS")
        return table

    @field_validator("broker_url")
    @classmethod
    def _broker_is_redis(cls, url: str) -> str:
        # Only the form; recvault.queue.broker checks the rest (hosts, master name, TLS) at start.
        if urlsplit(url.split(";")[0]).scheme not in {"redis", "rediss", "sentinel"}:
            raise ValueError("must be a redis://, rediss:// or sentinel://host:port;sentinel://… URL")
        return url

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_known(cls, value: object) -> object:
        level = value.strip().upper() if isinstance(value, str) else value
        level = "WARNING" if level == "WARN" else level
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("seal_period_seconds")
    @classmethod
    def _seal_period_divides_a_day(cls, seconds: int) -> int:
        if seconds < MIN_SEAL_PERIOD_SECONDS or SEAL_PERIOD_DAY % seconds:
            raise ValueError(f"{seconds} is not allowed: a number of seconds of at least {MIN_SEAL_PERIOD_SECONDS} "
                             f"that divides {SEAL_PERIOD_DAY} (e.g. 300, 900, 1800, 3600, 21600, 86400)")
        return seconds

    @field_validator("seal_witness")
    @classmethod
    def _seal_witness_shape(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("s3://") and not value.removeprefix("s3://").split("/", 1)[0]:
            raise ValueError("an S3 witness is s3://bucket or s3://bucket/prefix")
        return value

    @field_validator("audit_key")
    @classmethod
    def _audit_key_is_long(cls, key: SecretStr) -> SecretStr:
        if not key.get_secret_value():
            return key  # off
        _reject_placeholder(key, "RECVAULT_AUDIT_KEY")
        if len(key.get_secret_value()) < MIN_AUDIT_KEY_LENGTH:
            raise ValueError(f"too short: at least {MIN_AUDIT_KEY_LENGTH} characters of a random key are required "
                             "(e.g. `openssl rand -hex 32`)")
        return key

    @field_validator("audit_key_since", mode="before")
    @classmethod
    def _audit_key_since_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("audit_key_since")
    @classmethod
    def _audit_key_since_utc(cls, since: datetime | None) -> datetime | None:
        if since is not None and since.tzinfo is None:
            raise ValueError("needs its UTC offset, e.g. 2026-05-01T00:00:00Z")
        return since.astimezone(UTC) if since is not None else None

    @field_validator("s3_prefix")
    @classmethod
    def _prefix_shape(cls, prefix: str) -> str:
        prefix = prefix.strip("/")
        return f"{prefix}/" if prefix else ""

    @model_validator(mode="after")
    def _api_key_pair(self) -> Settings:
        if (self.twilio_api_key_sid is None) != (self.twilio_api_key_secret is None):
            raise ValueError(
                "RECVAULT_TWILIO_API_KEY_SID and RECVAULT_TWILIO_API_KEY_SECRET go together"
            )
        if self.twilio_api_key_sid:
            sids.check_sid(self.twilio_api_key_sid, sids.API_KEY, "RECVAULT_TWILIO_API_KEY_SID")
        if self.twilio_api_key_secret is not None:
            _reject_placeholder(self.twilio_api_key_secret, "RECVAULT_TWILIO_API_KEY_SECRET")
        return self

    # --- derived values -------------------------------------------------------
    @cached_property
    def allowed_media_hosts(self) -> frozenset[str]:
        """The media-host allowlist; the configured API base host is always on it."""
        api_host = self.twilio_api_base_url.host or ""
        return frozenset(h.lower() for h in [*self.media_hosts, api_host] if h)

    @property
    def enqueue_replicas(self) -> int:
        """Replicas ingest waits for after each batch: a Sentinel-managed master has at least one."""
        if self.broker_wait_replicas is not None:
            return self.broker_wait_replicas
        return 1 if urlsplit(self.broker_url).scheme == "sentinel" else 0

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def dlq_dir(self) -> Path:
        return self.data_dir / "dlq"

    def archives_in_flight(self, pool: str | None = None) -> int:
        """Tasks one `recvault worker` runs at once with `pool` (default: worker_pool)."""
        if self.worker_concurrency is not None:
            return self.worker_concurrency
        return DEFAULT_CONCURRENCY[pool or self.worker_pool]

    def worker_process_count(self, pool: str | None = None) -> int:
        """Processes one `recvault worker` runs with `pool` (default: worker_pool)."""
        if self.worker_processes is not None:
            return self.worker_processes
        return DEFAULT_PROCESSES[pool or self.worker_pool]

    def tokens_for(self, account_sid: str | None) -> list[str]:
        """Auth Tokens that may have signed a callback for this account, current first."""
        if account_sid and account_sid in self.twilio_subaccount_tokens:
            return [t.get_secret_value() for t in self.twilio_subaccount_tokens[account_sid]]
        return [t.get_secret_value() for t in self.twilio_auth_tokens]

    def every_token(self) -> list[str]:
        """Every Auth Token configured, the main account's first: whatever may have signed a callback."""
        subaccounts = [t.get_secret_value() for tokens in self.twilio_subaccount_tokens.values() for t in tokens]
        return [*self.tokens_for(None), *subaccounts]

    def download_credentials(self, account_sid: str) -> tuple[str, str]:
        """HTTP Basic credentials for media: an API key if configured, else AccountSid + token."""
        if self.twilio_api_key_sid and self.twilio_api_key_secret:
            return self.twilio_api_key_sid, self.twilio_api_key_secret.get_secret_value()
        tokens = self.tokens_for(account_sid)
        if not tokens:
            raise ConfigurationError(
                "RECVAULT_TWILIO_API_KEY_SID/SECRET or RECVAULT_TWILIO_AUTH_TOKENS: "
                f"no Twilio credentials for downloads from {account_sid}"
            )
        return account_sid, tokens[0]


def describe_validation_error(error: ValidationError) -> str:
    """One line per RECVAULT_ variable in trouble, naming it; a check across variables names them itself."""
    problems: dict[str, list[str]] = {}
    for problem in error.errors():
        loc = [str(part) for part in problem["loc"] if not isinstance(part, int)]
        message = str(problem["msg"]).removeprefix("Value error, ")
        if not loc:
            problems.setdefault(message, [])
            continue
        variable = env_name(loc[0])
        inner = ": ".join([*loc[1:], message])  # a JSON setting's key, then what is wrong with it
        said = problems.setdefault(variable, [])
        if inner not in said:
            said.append(inner)
    return "\n".join(f"{variable}: {'; '.join(said)}" if said else variable for variable, said in problems.items())


def unknown_variables(environ: dict[str, str] | None = None, env_file: Path | None = Path(".env")) -> list[str]:
    """A warning for each RECVAULT_ variable (in the environment, or .env if there is one) that no setting
    reads, with the closest setting's name: a misspelt setting is otherwise silently ignored.

    Old names that RENAMED still accepts and the test suite's variables are known names."""
    known = {env_name(field) for field in Settings.model_fields} | {env_name(old) for old in RENAMED}
    known |= TEST_VARIABLES
    found = [(name, "") for name in (os.environ if environ is None else environ)]
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        found += [(name, f" (in {env_file})") for name in dotenv_values(env_file)]
    candidates = [field.upper() for field in Settings.model_fields]
    warnings = []
    for name, where in found:
        upper = name.upper()
        if not upper.startswith("RECVAULT_") or upper in known:
            continue
        closest = difflib.get_close_matches(upper.removeprefix("RECVAULT_"), candidates, n=1)
        hint = f"; did you mean RECVAULT_{closest[0]}?" if closest else ""
        warnings.append(f"{name}{where} is not a recvault setting and is ignored{hint}")
    return warnings


def warn_unknown_variables() -> None:
    """Log one warning line per unknown RECVAULT_ variable (see unknown_variables)."""
    for warning in unknown_variables():
        log.warning(warning, extra={"unknown_setting": warning.split(" ", 1)[0]})


class _WithoutUpEnvFile(Settings):
    """Settings that ignore the file `recvault up` leaves: what `up` itself reads (it writes that file)."""

    reads_up_env_file: ClassVar[bool] = False


def load_settings(*, up_env_file: bool = True, **overrides: object) -> Settings:
    """Build Settings from the environment, turning validation errors into one clear message.

    `up_env_file=False`: without the file a running `recvault up` leaves in the data directory.
    """
    kind = Settings if up_env_file else _WithoutUpEnvFile
    try:
        return kind(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigurationError(describe_validation_error(error)) from None
    except SettingsError as error:
        # pydantic-settings raises this, naming the field, when a JSON-valued variable
        # (RECVAULT_BROKER_TRANSPORT_OPTIONS, RECVAULT_TWILIO_SUBACCOUNT_TOKENS) is not JSON.
        field = re.search(r'field "([a-z_0-9]+)"', str(error))
        variable = env_name(field[1]) if field else "configuration"
        raise ConfigurationError(f"{variable}: not valid JSON") from None


def require_tokens(settings: Settings) -> None:
    """Ingest cannot verify anything without at least one Auth Token."""
    if not settings.twilio_auth_tokens and not settings.twilio_subaccount_tokens:
        raise ConfigurationError(
            "RECVAULT_TWILIO_AUTH_TOKENS: required (comma-separated Auth Tokens, current first)"
        )
