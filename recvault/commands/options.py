"""Option types and helpers the subcommands share: who acts, days, RecordingSids, the store.

The compliance commands (hold, erase, lifecycle, purge) record who acted; every command that
takes a day (those, `audit` and `reconcile`) reads it with `day`, and a RecordingSid with
`recording_sid`.
"""

from __future__ import annotations

import argparse
import os
import pwd
from typing import TYPE_CHECKING

from recvault.days import parse_day
from recvault.settings import Settings

if TYPE_CHECKING:
    from recvault.storage.s3 import S3Store


def add_actor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", default=None, metavar="WHO",
                        help="who is acting, for the audit trail (default: the local user name)")


def actor_of(args: argparse.Namespace) -> str:
    """Who a command acts as in the audit trail: `--actor` when given, else the operating-system
    account running it (from the password database, not the environment; `uid:N` without an entry)."""
    if args.actor:
        return str(args.actor)
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid:{os.getuid()}"


def day(value: str) -> str:
    """An argparse type: a day written YYYY-MM-DD (recvault.days.parse_day), else a usage error."""
    try:
        return parse_day(value).isoformat()
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def recording_sid(value: str) -> str:
    """An argparse type: a RecordingSid (RE and 32 hex digits), else a usage error naming it."""
    from recvault import sids

    if not sids.is_sid(value, sids.RECORDING):
        raise argparse.ArgumentTypeError(f"{value!r} is not a RecordingSid (RE and 32 hex digits)")
    return value


def reason(value: str) -> str:
    """An argparse type: a reason a person can read later (not blank)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("--reason must say why")
    return value.strip()


def store_for(settings: Settings) -> S3Store:
    """The archive's store; the bucket must exist already (these commands never create it)."""
    from recvault.storage.s3 import S3Store

    store = S3Store.from_settings(settings)
    store.ensure_bucket(create=False)
    return store
