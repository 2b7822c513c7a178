"""A Twilio stand-in for tests, the demo and benchmarks: REST API, media, signed callbacks."""
