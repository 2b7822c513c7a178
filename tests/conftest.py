"""Shared fixtures: real Redis (plain, TLS, Sentinel), SeaweedFS, the Twilio simulator, and archives
made by the real archive functions (see tests/fixtures)."""

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
