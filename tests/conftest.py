"""Shared fixtures: real Redis (plain, TLS, Sentinel), SeaweedFS, the Twilio simulator, and archives
made by the real archive functions (see tests/fixtures)."""

import pytest

pytest_plugins = [
    "tests.fixtures.foreign_host",
    "tests.fixtures.redis",
    "tests.fixtures.sentinel",
    "tests.fixtures.services",
    "tests.fixtures.simulator",
    "tests.fixtures.tls_redis",
    "tests.fixtures.insider",
    # Last: it builds on the services above.
    "tests.fixtures.archive",
]


def pytest_configure(config: object) -> None:
    """Keep the run away from a `recvault up` running in this checkout: its `.recvault/env` would
    otherwise point every Settings() the tests build, and every command they start, at that stack."""
    import os
    import tempfile

    os.environ.setdefault("RECVAULT_DATA_DIR", tempfile.mkdtemp(prefix="recvault-tests-"))


@pytest.fixture(autouse=True)
def _no_audit_key_left_behind():
    """A test that runs `recvault.cli.main` with RECVAULT_AUDIT_KEY set leaves that key as the process's
    signing key; the next test starts without one, as a process started without the setting does."""
    yield
    from recvault.audit import process_key

    process_key.use(None)
