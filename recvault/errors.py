"""recvault's error hierarchy; library errors are mapped into it at each boundary.

    RecvaultError
    ├── AlreadyExists           a create-only write found its key taken: the work was done
    ├── TransientError          retry with jittered exponential backoff
    │   ├── TwilioUnavailable       429, 5xx, timeouts, cut or short bodies
    │   ├── MediaNotReady           404 in the first minutes after `completed`
    │   └── StorageUnavailable      S3 throttling, outage, timeouts
    └── PermanentError          dead-letter with the reason; retrying cannot help
        ├── ForeignHost             a URL outside the Twilio host allowlist
        ├── TwilioAuthFailed        401/403: credentials are wrong or revoked
        ├── RecordingGone           404 long after completion: deleted at Twilio
        ├── IntegrityFailed         size or checksum differs after upload
        ├── StorageRejected         S3 refused the request for good (403, bad bucket)
        └── ConfigurationError      a setting or policy rule is wrong; the message names it
"""

from __future__ import annotations


class RecvaultError(Exception):
    """Base of every error recvault raises on purpose."""


class TransientError(RecvaultError):
    """A failure that may pass; the task retries it with backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TwilioUnavailable(TransientError):
    """Twilio answered 429/5xx, timed out, or cut the media body short."""


class MediaNotReady(TransientError):
    """Twilio answered 404 for media that should exist soon after `completed`."""


class StorageUnavailable(TransientError):
    """S3 is unreachable, slow or throttling."""


class PermanentError(RecvaultError):
    """A failure retrying cannot fix; the event goes to the dead-letter store."""


class ForeignHost(PermanentError):
    """A URL points outside the Twilio host allowlist; no credentials are sent there."""


class TwilioAuthFailed(PermanentError):
    """Twilio refused the credentials (401/403)."""


class RecordingGone(PermanentError):
    """The recording no longer exists at Twilio."""


class IntegrityFailed(PermanentError):
    """The stored object does not match what was downloaded."""


class StorageRejected(PermanentError):
    """S3 refused the request in a way retrying cannot change."""


class ConfigurationError(PermanentError):
    """A setting or policy rule is missing or wrong; the message names the variable or rule."""


class AlreadyExists(RecvaultError):
    """A create-only write found the key taken; callers treat it as work already done."""
