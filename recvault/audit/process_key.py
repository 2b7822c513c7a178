"""The audit key this process signs its entries with: set once, where the process builds its settings.

Every entry is appended through audit.append, called from the workers' tasks, beat's, ingest's
media route and a dozen commands, and every one of those processes is started through
recvault.cli, which builds Settings once and calls use_settings() with them (a worker's pool
children and ingest's `--processes` are forked from it after; `up`, the worker group and their
kind start `recvault …` again). So the key is set in that one place and read in audit.append,
rather than threaded through every caller of append, or carried by the ObjectStore: the store is
what the S3 credentials open, and the point of the key is that those credentials do not give it.

The sealer and `audit verify` check entries with a key they are given (from_settings), as they
are given the seal witness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recvault.audit.signing import AuditKey

if TYPE_CHECKING:
    from recvault.settings import Settings

_current: list[AuditKey | None] = [None]


def from_settings(settings: Settings) -> AuditKey | None:
    """RECVAULT_AUDIT_KEY and RECVAULT_AUDIT_KEY_SINCE; None when no key is set."""
    secret = settings.audit_key.get_secret_value()
    return AuditKey(secret.encode(), settings.audit_key_since) if secret else None


def use(key: AuditKey | None) -> None:
    """Sign every entry this process appends from now on with `key` (None: no MAC)."""
    _current[0] = key


def use_settings(settings: Settings) -> None:
    use(from_settings(settings))


def current() -> AuditKey | None:
    """The key entries are signed with, if any."""
    return _current[0]
