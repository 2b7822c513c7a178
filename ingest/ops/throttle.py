"""Backing off a client address after failed sign-ins: a few mistakes are free, then each try waits longer.

Per address, failures are counted until FORGET_SECONDS pass without one. After FREE_FAILURES of
them the address must wait before each next try: 1 s, doubling with each further failure up to
MAX_DELAY_SECONDS. While it waits, its token is not even compared (the
answer is 429 with Retry-After), so guessing runs at one try per delay. A correct token forgets
the address's failures. IPv6 clients are counted per /64, the block one host usually holds.

Memory is bounded: at most MAX_ADDRESSES addresses are remembered, the least recently failed
forgotten first. Each server process (`serve --processes N`) keeps its own counts.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# Failures an address may make before it has to wait.
FREE_FAILURES = 5
# The longest wait between two tries; the first is 1 s, doubling with each failure.
MAX_DELAY_SECONDS = 900.0
# An address with no failure for this long starts afresh (longer than the longest wait, so waiting
# it out does not earn new free tries).
FORGET_SECONDS = 3600.0
# Addresses remembered at most.
MAX_ADDRESSES = 10_000


@dataclass
class _Failures:
    count: int
    last: float


class Throttle:
    """Failed sign-ins by client address, and how long each must wait before its next try."""

    def __init__(self, *, free: int = FREE_FAILURES, max_delay: float = MAX_DELAY_SECONDS,
                 forget: float = FORGET_SECONDS, max_addresses: int = MAX_ADDRESSES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free, self.max_delay, self.forget, self.max_addresses = free, max_delay, forget, max_addresses
        self.clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def wait(self, address: str | None) -> int:
        """Whole seconds `address` must still wait before its token is checked (0: it may try now)."""
        key = _key(address)
        record = self._failures.get(key)
        if record is None:
            return 0
        now = self.clock()
        if now - record.last >= self.forget:
            del self._failures[key]
            return 0
        remaining = record.last + self._delay(record.count) - now
        return math.ceil(remaining) if remaining > 0 else 0

    def failed(self, address: str | None) -> int:
        """Count a failed try from `address`; the seconds it must now wait (0 while its failures are free)."""
        key = _key(address)
        now = self.clock()
        record = self._failures.pop(key, None)
        if record is None or now - record.last >= self.forget:
            record = _Failures(0, now)
        record.count += 1
        record.last = now
        self._failures[key] = record  # most recent last
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        return math.ceil(self._delay(record.count))

    def succeeded(self, address: str | None) -> None:
        """A correct token from `address`: its failures are forgotten."""
        if self._failures:
            self._failures.pop(_key(address), None)

    def _delay(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(2.0 ** (failures - self.free), self.max_delay)


def _key(address: str | None) -> str:
    """What failures are counted under: the address, an IPv6 address's /64."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
