"""Days written YYYY-MM-DD: the one parser of a day a person or a client gives recvault; and the
one rule for a time that came without a zone (S3's dates, a stored ISO time): it is UTC.

Every command option (`--from`, `--to`, `--date`, `--date-before`), the operations routes'
`from`, `to` and `date` parameters, the hold selector and the scheduled tasks' payloads take
a day through `parse_day`. It accepts exactly four, two and two ASCII digits that name a real
calendar day; `date.fromisoformat` would also take `20261124` and ISO week dates such as
`2026-W48-1`, which recvault's partitions (`date=YYYY-MM-DD`) never use.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
# Quoted back at most this much of a refused value: it may come from a request.
_QUOTED = 40


def parse_day(text: str) -> date:
    """The calendar day `text` names, written YYYY-MM-DD; ValueError saying so otherwise."""
    found = _DAY.fullmatch(text)
    if found is not None:
        year, month, day = (int(part) for part in found.groups())
        try:
            return date(year, month, day)
        except ValueError:
            pass  # 2026-11-31, 2026-13-01, 0000-01-01
    raise ValueError(f"{text[:_QUOTED]!r} is not a day written YYYY-MM-DD")


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; one without a zone is taken as UTC (recvault writes and S3 answers UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
