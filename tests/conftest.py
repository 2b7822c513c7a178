"""Shared fixtures: real Redis (plain, TLS, Sentinel), SeaweedFS, the Twilio simulator, and archives
made by the real archive functions (see tests/fixtures)."""

pytest_plugins = [
    "tests.fixtures.foreign_host",
    "tests.fixtures.redis",
    "tests.fixtures.sentinel",
    "tests.fixtures.services",
    "tests.fixtures.simulator",
    "tests.fixtures.tls_redis",
    # Last: it builds on the services above.
    "tests.fixtures.archive",
]
