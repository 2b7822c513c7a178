"""Small thread-safe caches: values that expire after a few seconds, and a bounded LRU."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Expiring(Generic[K, V]):
    """Values computed on demand and kept for `seconds`; at most `size` of them."""

    def __init__(self, seconds: float, size: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._lru: Lru[K, tuple[float, V]] = Lru(size)
        self._clock = clock

    def get(self, key: K, compute: Callable[[], V]) -> V:
        """The cached value while fresh, else `compute()` (two callers may both compute; both agree)."""
        found = self._lru.get(key)
        now = self._clock()
        if found is not None and now - found[0] < self._seconds:
            return found[1]
        value = compute()
        self._lru.put(key, (now, value))
        return value


class Lru(Generic[K, V]):
    """At most `size` entries; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
