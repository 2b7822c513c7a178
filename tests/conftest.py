"""Shared fixtures: real Redis (plain, TLS, Sentinel), SeaweedFS and the Twilio simulator (see tests/fixtures)."""

pytest_plugins = [
    "tests.fixtures.foreign_host",
    "tests.fixtures.redis",
    "tests.fixtures.sentinel",
    "tests.fixtures.services",
    "tests.fixtures.simulator",
    "tests.fixtures.tls_redis",
]
