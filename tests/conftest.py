"""Shared fixtures: real Redis, real SeaweedFS, the real Twilio simulator (see tests/fixtures)."""

pytest_plugins = [
    "tests.fixtures.foreign_host",
    "tests.fixtures.redis",
    "tests.fixtures.services",
    "tests.fixtures.simulator",
]
