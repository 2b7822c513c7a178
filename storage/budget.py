"""A byte budget shared by every write of one process: what bounds memory, whatever the concurrency.

A threads worker runs many archives at once and each holds recording bytes: a small
recording whole (one buffer of its size), a large one a few parts. Counting threads does
not bound that (sixteen 1-hour recordings would hold 16 x 3 parts); the bytes do. Each
write reserves what it will hold before it holds it and waits while the budget is spent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ByteBudget:
    """At most `limit` bytes reserved at once; a single reservation larger than that waits for all."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a byte budget must be positive, not {limit}")
        self.limit = limit
        self._used = 0
        self._changed = threading.Condition()

    @property
    def used(self) -> int:
        return self._used

    @contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        """Hold `size` bytes of the budget for the block; waits until they are free.

        A reservation over the whole limit waits until nothing else is reserved, so it
        runs alone rather than never.
        """
        size = max(0, size)
        with self._changed:
            self._changed.wait_for(lambda: self._used + size <= self.limit or self._used == 0)
            self._used += size
        try:
            yield
        finally:
            with self._changed:
                self._used -= size
                self._changed.notify_all()
