"""The soak runs only when asked for by its marker (`-m soak`, as `make soak` does): ten minutes is
no part of `make test` or `make test-system`, whose marker expressions do not name it."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: the long soak of ingest and workers (`make soak`); minutes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.getoption("markexpr") or ""):
        return
    skipped = [item for item in items if item.get_closest_marker("soak")]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]
