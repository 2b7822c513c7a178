"""What the compliance commands (hold, erase, lifecycle, purge) share: who acts, days, the store."""

from __future__ import annotations

import argparse
import os
import pwd
import re
from datetime import date
from typing import TYPE_CHECKING

from recvault.settings import Settings

if TYPE_CHECKING:
    from recvault.storage.s3 import S3Store

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def local_user() -> str:
    """The operating-system account running the command (from the password database, not the environment)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid:{os.getuid()}"


def add_actor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", default=None, metavar="WHO",
                        help="who is acting, for the audit trail (default: the local user name)")


def actor_of(args: argparse.Namespace) -> str:
    return str(args.actor or local_user())


def day(value: str) -> str:
    """An argparse type: a day written YYYY-MM-DD."""
    try:
        if not _DAY.fullmatch(value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a day written YYYY-MM-DD") from None
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
