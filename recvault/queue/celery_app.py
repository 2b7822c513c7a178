"""`app` for Celery's own tools: `celery -A recvault.queue.celery_app inspect active`, `events`, Flower.

Those tools import a module and take its `app`. Here that attribute is built on first
access (a module `__getattr__`), from the environment through `load_settings()` — the one
place outside the entrypoints where recvault reads its configuration, and only when a
Celery tool asks: importing recvault, or this module, reads nothing. The app has the broker
and transport options recvault's workers use and no tasks; run workers with `recvault worker`.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery

from recvault.queue.celery_factory import create_celery
from recvault.settings import load_settings

_built: list[Celery] = []
_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    if name not in ("app", "celery"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        if not _built:
            _built.append(create_celery(load_settings()))
    return _built[0]
