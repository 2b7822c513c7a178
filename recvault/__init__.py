"""recvault: archive Twilio call recordings to S3, verified and with full metadata."""

__version__ = "0.1.0"
