"""Translate botocore errors into recvault's hierarchy; the S3 error code is kept, never secrets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
)

from recvault.errors import (
    AlreadyExists,
    IntegrityFailed,
    RecvaultError,
    StorageRejected,
    StorageUnavailable,
)

# Codes S3 (and S3-compatible stores) use for throttling and passing trouble.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequests",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        # The upload was aborted under us: by a duplicate delivery of the same event clearing
        # what it took for a killed writer's leftover. Trying again finds that writer's object.
        "NoSuchUpload",
    }
)
# The store refused the bytes because they did not match the checksum sent with them.
DIGEST_CODES = frozenset({"BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"})
# What S3 answers for a missing bucket, key or version ("404" is a HEAD's, which has no body).
NOT_FOUND = frozenset({"404", "NoSuchBucket", "NoSuchKey", "NoSuchVersion"})
# HTTP 412: an If-None-Match: * write found the key taken.
PRECONDITION_FAILED = 412
# HTTP 429 is throttling whatever the code says; 5xx are the store's own failures.
TOO_MANY_REQUESTS = 429


def error_code(error: ClientError) -> str:
    """The S3 error code of a ClientError ("404" for a HEAD, which has no body)."""
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def http_status(error: ClientError) -> int:
    """The HTTP status of a ClientError, 0 if botocore did not record one."""
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def translate(error: Exception, action: str) -> RecvaultError:
    """The recvault error a botocore error stands for; `action` says what was being done."""
    if isinstance(error, ClientError):
        code, status = error_code(error), http_status(error)
        message = str(error.response.get("Error", {}).get("Message", ""))[:200]
        text = f"S3 {action}: {code} (HTTP {status}) {message}".rstrip()
        if status == PRECONDITION_FAILED or code == "PreconditionFailed":
            return AlreadyExists(text)
        if status >= 500 or status == TOO_MANY_REQUESTS or code in TRANSIENT_CODES:
            return StorageUnavailable(text)
        if code in DIGEST_CODES:
            return IntegrityFailed(text)
        return StorageRejected(text)
    name = type(error).__name__
    if isinstance(error, ConnectionError | HTTPClientError | IncompleteReadError):
        return StorageUnavailable(f"S3 {action}: {name}: {error}")
    if isinstance(error, FlexibleChecksumError):
        return IntegrityFailed(f"S3 {action}: {name}: {error}")
    if isinstance(error, NoCredentialsError):
        # Most often a command run where no `recvault up` is running any more (it leaves the
        # embedded S3's keys in RECVAULT_DATA_DIR/env only while it runs).
        return StorageRejected(f"S3 {action}: no AWS credentials found: give them through the standard AWS "
                               "chain (environment, profile, instance or pod role), or run this where "
                               "`recvault up` is running")
    return StorageRejected(f"S3 {action}: {name}: {error}")


@contextmanager
def s3_errors(action: str, *, ignore: frozenset[str] = frozenset()) -> Iterator[None]:
    """Re-raise botocore errors met inside the block as recvault errors; swallow `ignore` codes."""
    try:
        yield
    except ClientError as error:
        if error_code(error) not in ignore:
            raise translate(error, action) from error
    except BotoCoreError as error:
        raise translate(error, action) from error
