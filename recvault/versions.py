"""The schema versions of what one recvault process writes for another to read: task messages and documents.

During a rolling upgrade, processes of two releases share one queue and one bucket. So every
task payload recvault queues names the version of its shape under MESSAGE_FIELD, and every
metadata and event document under DOCUMENT_FIELD. A payload or document without one was written
before versions existed: it is version 0 (UNVERSIONED), which every release reads.

A reader that meets a version newer than it knows leaves the thing to a newer release: the
worker hands such a message back to the queue (workers.delivery) and never rewrites such a
document. Raise a version when the previous release would handle the new shape wrongly (a field
renamed, removed, given another meaning, or added with a meaning that must not be ignored); a
field the previous release may safely ignore needs no new version.
"""

from __future__ import annotations

from typing import Any

from recvault.errors import PermanentError

# The key of a task payload that holds its version.
MESSAGE_FIELD = "v"
# The version of the task payloads this release queues, and the newest its worker runs.
MESSAGE_VERSION = 1
# The field of a metadata or event document that holds its schema version.
DOCUMENT_FIELD = "schema_version"
# The schema of the documents this release writes, and the newest it rewrites.
DOCUMENT_VERSION = 1
# The version of a payload or document written before versions existed.
UNVERSIONED = 0


class InvalidVersion(PermanentError):
    """A version field that is not a whole number of at least 0: no release writes one."""


class NewerVersion(Exception):
    """A message or document of a version newer than this release knows: a newer release must handle it."""

    def __init__(self, what: str, version: int, known: int, key: str | None = None) -> None:
        where = f" at {key}" if key else ""
        super().__init__(f"{what}{where} is of version {version}; this release knows versions up to {known}")
        self.what = what
        self.version = version
        self.known = known
        self.key = key


def message_version(payload: object) -> int:
    """The version of a task payload: UNVERSIONED without one; InvalidVersion if it is no version."""
    if not isinstance(payload, dict) or MESSAGE_FIELD not in payload:
        return UNVERSIONED
    return _version(payload[MESSAGE_FIELD], "the message")


def document_version(document: dict[str, Any]) -> int:
    """The schema version of a document: UNVERSIONED without one; InvalidVersion if it is no version."""
    if DOCUMENT_FIELD not in document:
        return UNVERSIONED
    return _version(document[DOCUMENT_FIELD], "the document")


def check_message(payload: object) -> None:
    """NewerVersion if this release does not know the payload's version (InvalidVersion if it has none readable)."""
    version = message_version(payload)
    if version > MESSAGE_VERSION:
        raise NewerVersion("message", version, MESSAGE_VERSION)


def check_document(document: dict[str, Any], key: str) -> None:
    """NewerVersion if `document` (at `key`) is of a schema newer than this release writes."""
    version = document_version(document)
    if version > DOCUMENT_VERSION:
        raise NewerVersion("document", version, DOCUMENT_VERSION, key)


def _version(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidVersion(f"{what} names version {value!r}, not a whole number of at least 0")
    return value
