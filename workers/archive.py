"""Archiving one callback event: plain functions, testable without a broker.

`archive_event` is idempotent by construction: keys are deterministic, writes are
create-only, and work already done (media stored, document written) is found and
reused, so a redelivered or duplicated task never makes a second copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from recvault import documents as docs
from recvault import layout
from recvault.audit.integrity import stored_sha256
from recvault.audit.vouched import document_sha256
from recvault.audit.write import archived_details, ensure_archived_entry, write_audit
from recvault.compliance.policy import Decision, Policy
from recvault.compliance.tombstones import refuse_if_erased
from recvault.errors import AlreadyExists, IntegrityFailed, MediaNotReady, PermanentError, RecordingGone
from recvault.events import RecordingStatusEvent
from recvault.storage.base import ObjectStore, StoredObject
from recvault.twilio.api import DualUnavailable, Media, TwilioApi
from recvault.twilio.deletion import delete_verified, may_delete_from_twilio
from recvault.versions import DOCUMENT_FIELD, DOCUMENT_VERSION, NewerVersion, check_document
from recvault.workers.media_facts import HeaderProbe, check_media

log = logging.getLogger("recvault.worker")


@dataclass(frozen=True)
class ArchiveOptions:
    """Deployment choices that shape archiving."""

    prefix: str = ""
    media_format: str = "wav"
    delete_after_archive: bool = False
    # Twilio can answer 404 for a few seconds after `completed`; past this it means gone.
    not_found_grace: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class ArchiveResult:
    """What an archive call did."""

    outcome: str  # "archived", "already-archived", "event-recorded" or "refused-erased"
    key: str
    media: StoredObject | None = None
    price_pending: bool = False
    deleted_from_twilio: bool = False


def utcnow() -> datetime:
    return datetime.now(UTC)


def archive_event(
    event: RecordingStatusEvent,
    *,
    received_at: datetime,
    twilio: TwilioApi,
    store: ObjectStore,
    policy: Policy,
    options: ArchiveOptions,
    now: Callable[[], datetime] = utcnow,
) -> ArchiveResult:
    """Archive a completed recording, or record any other status as an event document.

    An erased recording is neither: its tombstone refuses it (an `archive-refused-erased` entry)
    before anything is downloaded or written, and the task ends there, done, not retried.
    """
    tombstone = refuse_if_erased(store, options.prefix, event.recording_sid, asked_by="archive task", now=now(),
                                 details={"status": event.recording_status})
    if tombstone is not None:
        return ArchiveResult("refused-erased", tombstone)
    if event.recording_status != "completed":
        return record_event(event, received_at=received_at, store=store, policy=policy, options=options, now=now)
    return archive_recording(event, received_at=received_at, twilio=twilio, store=store,
                             policy=policy, options=options, now=now)


def archive_recording(
    event: RecordingStatusEvent,
    *,
    received_at: datetime,
    twilio: TwilioApi,
    store: ObjectStore,
    policy: Policy,
    options: ArchiveOptions,
    now: Callable[[], datetime] = utcnow,
) -> ArchiveResult:
    """Fetch the Recording resource while the media starts streaming, store the media, write its document."""
    assert event.recording_url is not None  # the event model requires it for `completed`
    url = _resource_url(twilio, event)
    with ExitStack() as held:
        # Both requests wait on Twilio's round trip; asked together, they wait once. The media
        # URL comes from the SIDs and the callback's own RecordingChannels/EncryptionDetails say
        # which version to ask for; the resource decides before any byte is stored.
        fetcher = held.enter_context(ThreadPoolExecutor(1, thread_name_prefix="recording-fetch"))
        resource = fetcher.submit(twilio.fetch_recording, url, event.account_sid)
        guess = (_media_format(options, bool(event.encryption_details)), event.recording_channels)
        try:
            opened = _open_guessed(twilio, held, url, event, guess[0], guess[1])
            recording = resource.result()
        except MediaNotReady as error:
            return _not_found(twilio, store, event, received_at, options, now, error)
        date = docs.recording_date(recording.get("start_time"), received_at)
        meta_key = layout.metadata_key(options.prefix, date, event.recording_sid)
        if meta_key != layout.metadata_key(options.prefix, _event_date(event, received_at), event.recording_sid) \
                and store.head(meta_key) is not None:
            return _already_archived(twilio, store, event, meta_key, options, now, repair_trail=True)
        decision = policy.decide(recording, labels=event.labels, now=now())
        encrypted = bool(recording.get("encryption_details"))
        fmt = _media_format(options, encrypted)
        channels = int(recording.get("channels") or event.recording_channels or 1)
        if opened is None or (fmt, channels) != guess:
            held.close()  # the callback's facts were missing or wrong: ask again as the resource says
            opened = _open_media(twilio, held, url, event, fmt, channels)
        mkey = layout.media_key(options.prefix, date, event.account_sid, event.recording_sid, fmt)
        try:
            stored, header, got_channels, source = _store_media(
                twilio, store, event, recording, mkey, opened, fmt=fmt, channels=channels, decision=decision,
                meta_key=meta_key)
        except DocumentExists:
            # A create-only write found the media: an earlier attempt finished the whole archive.
            return _already_archived(twilio, store, event, meta_key, options, now, repair_trail=True)
    archive = {
        "media_key": mkey,
        "media_version_id": stored.version_id,
        "media_size": stored.size,
        "media_sha256": stored.sha256_hex,
        "media_checksum_sha256": stored.checksum_sha256,
        "media_format": fmt,
        "content_type": docs.CONTENT_TYPES[fmt],
        "requested_channels": got_channels,
        "media_source": source,
        **check_media(header, fmt=fmt, encrypted=encrypted, channels=got_channels,
                      duration=int(recording.get("duration") or 0)),
        "archived_at": now().isoformat(),
        "received_at": received_at.isoformat(),
        "callback": event.params,
        **decision.document_fields(event.labels),
        "retention_mode": decision.retention.mode,
        "retain_until": decision.retention.until.isoformat() if decision.retention.until else None,
        "legal_hold": decision.retention.legal_hold,
        "tags": decision.tags,
        "twilio_deleted_at": None,
    }
    document = docs.metadata_document(recording, archive)
    try:
        # The document, then its `archived` entry (the entry's index row goes with the document).
        write_audit(store, options.prefix, event.recording_sid, "archived", archived_details(document),
                    decision.retention, now(),
                    alongside=lambda: store.put_bytes(meta_key, layout.json_line(document),
                                                      content_type="application/json",
                                                      retention=decision.retention, placement=decision.placement))
    except AlreadyExists:
        # A duplicate delivery running alongside finished first: its document and its audit
        # record describe the same object, and a second "archived" record would be false.
        return _already_archived(twilio, store, event, meta_key, options, now)
    log.info("archived", extra={"recording_sid": event.recording_sid, "key": mkey,
                                "bytes": stored.size, "sha256": stored.sha256_hex})

    price_pending = recording.get("price") is None
    deleted = False
    # With the price still unknown, deletion waits for the refresh that fills it in.
    if options.delete_after_archive and decision.delete_from_twilio and not price_pending:
        delete_verified(twilio, store, event.account_sid, event.recording_sid, meta_key, options.prefix, now)
        deleted = True
    return ArchiveResult("archived", meta_key, stored, price_pending, deleted)


def _already_archived(twilio: TwilioApi, store: ObjectStore, event: RecordingStatusEvent, meta_key: str,
                      options: ArchiveOptions, now: Callable[[], datetime], *,
                      repair_trail: bool = False) -> ArchiveResult:
    """Work an earlier attempt finished; complete its audit entry and Twilio delete if it stopped short.

    A document of a newer schema was written by a newer release, which finishes its own work:
    it is left as it is.
    """
    document = json.loads(store.get_bytes(meta_key))
    try:
        check_document(document, meta_key)
    except NewerVersion as newer:
        log.warning("already archived by a newer release; its document is left as it is",
                    extra={"recording_sid": event.recording_sid, "key": meta_key, "version": newer.version,
                           "known": newer.known})
        return ArchiveResult("already-archived", meta_key)
    log.info("already archived", extra={"recording_sid": event.recording_sid, "key": meta_key})
    if repair_trail:
        ensure_archived_entry(store, options.prefix, document, now())
    price_pending = document.get("price") is None
    deleted = False
    # An earlier attempt may have stopped between its document and its Twilio delete.
    if (options.delete_after_archive and may_delete_from_twilio(document) and not price_pending
            and not document.get("twilio_deleted_at")):
        delete_verified(twilio, store, event.account_sid, event.recording_sid, meta_key, options.prefix, now)
        deleted = True
    return ArchiveResult("already-archived", meta_key, price_pending=price_pending, deleted_from_twilio=deleted)


def _event_date(event: RecordingStatusEvent, received_at: datetime) -> str:
    """The partition date (UTC) from the callback's RecordingStartTime, else its arrival."""
    start = event.recording_start_time or received_at
    return start.astimezone(UTC).strftime("%Y-%m-%d")


def record_event(event: RecordingStatusEvent, *, received_at: datetime, store: ObjectStore, policy: Policy,
                 options: ArchiveOptions, now: Callable[[], datetime] = utcnow) -> ArchiveResult:
    """Keep a non-completed callback (in-progress, absent, failed, …) as an event document."""
    key = layout.event_key(options.prefix, _event_date(event, received_at), event.recording_sid,
                         event.recording_status)
    document = {
        "sid": event.recording_sid, "account_sid": event.account_sid, "call_sid": event.call_sid,
        "conference_sid": event.conference_sid, "status": event.recording_status,
        "error_code": event.error_code, "source": event.recording_source,
        "channels": event.recording_channels, "track": event.recording_track,
        "start_time": event.recording_start_time.isoformat() if event.recording_start_time else None,
        "received_at": received_at.isoformat(), "recorded_at": now().isoformat(),
        "callback": event.params, "pipeline_version": docs.PIPELINE_VERSION, DOCUMENT_FIELD: DOCUMENT_VERSION,
    }
    # Locked and placed like the recording the policy would decide for these facts.
    decision = policy.decide({
        "account_sid": event.account_sid, "source": event.recording_source, "channels": event.recording_channels,
        "track": event.recording_track, "duration": event.recording_duration,
        "conference_sid": event.conference_sid, "status": event.recording_status, "error_code": event.error_code,
        "encryption_details": event.encryption_details,
    }, labels=event.labels, now=now())
    retention = decision.retention
    document.update(decision.document_fields(event.labels))
    try:
        write_audit(store, options.prefix, event.recording_sid, f"event-{event.recording_status}",
                    {"key": key, "error_code": event.error_code, "document_sha256": document_sha256(document)},
                    retention, now(),
                    alongside=lambda: store.put_bytes(key, layout.json_line(document), content_type="application/json",
                                                      retention=retention, placement=decision.placement))
    except AlreadyExists:
        return ArchiveResult("already-archived", key)
    return ArchiveResult("event-recorded", key)


class DocumentExists(Exception):
    """The media key is taken and the recording's document exists: nothing left to store."""


def _media_format(options: ArchiveOptions, encrypted: bool) -> str:
    return "wav" if encrypted else options.media_format  # Twilio serves encrypted audio as WAV only


def _open_media(twilio: TwilioApi, held: ExitStack, url: str, event: RecordingStatusEvent, fmt: str,
                channels: int) -> tuple[Media, int]:
    """Start the media download (its answer's headers read), falling back to mono when there is no dual."""
    for attempt_channels in ((2, 1) if channels == 2 else (1,)):
        try:
            return held.enter_context(twilio.open_media(url, event.account_sid, fmt=fmt,
                                                        channels=attempt_channels)), attempt_channels
        except DualUnavailable:
            # Twilio's own "no dual version" (error 16113): mono is all there is. The document
            # records the channels archived; a Twilio delete refuses a dual original kept as mono.
            log.info("no dual-channel version; archiving mono", extra={"recording_sid": event.recording_sid})
    raise RecordingGone(f"{event.recording_sid}: no media version could be fetched")


def _open_guessed(twilio: TwilioApi, held: ExitStack, url: str, event: RecordingStatusEvent, fmt: str,
                  channels: int | None) -> tuple[Media, int] | None:
    """The media the callback's facts point to; None when they are missing or Twilio refuses them
    (an encrypted recording whose callback omitted EncryptionDetails has no MP3: error 16109)."""
    if channels is None:
        return None
    try:
        return _open_media(twilio, held, url, event, fmt, channels)
    except PermanentError:
        return None  # the Recording resource decides what to ask for


def _not_found(twilio: TwilioApi, store: ObjectStore, event: RecordingStatusEvent, received_at: datetime,
               options: ArchiveOptions, now: Callable[[], datetime], error: MediaNotReady) -> ArchiveResult:
    """Twilio answered 404: already archived (and deleted there), not ready yet, or gone."""
    # Looked at only on this path: a redelivered task whose first run archived the recording and
    # deleted it at Twilio meets a 404 for good and must not end as a dead letter.
    callback_key = layout.metadata_key(options.prefix, _event_date(event, received_at), event.recording_sid)
    if store.head(callback_key) is not None:
        return _already_archived(twilio, store, event, callback_key, options, now, repair_trail=True)
    if now() - received_at > options.not_found_grace:
        raise RecordingGone(f"{event.recording_sid} still 404 {now() - received_at} after its callback") from error
    raise error


def _store_media(
    twilio: TwilioApi, store: ObjectStore, event: RecordingStatusEvent, recording: dict, key: str,
    opened: tuple[Media, int], *, fmt: str, channels: int, decision: Decision, meta_key: str,
) -> tuple[StoredObject, bytes, int, str]:
    """Stream the open media into `key`, or adopt what an earlier attempt stored there once it is
    proven to be Twilio's media; returns (object, header bytes, channels, how it was verified)."""
    # No look first: the create-only write is the check (a single PUT makes it with
    # If-None-Match, a multipart upload before sending any part).
    media, got = opened
    probe = HeaderProbe(media.chunks)
    metadata = {**docs.s3_user_metadata(recording), "requested-channels": str(got)}
    try:
        stored = store.put_stream(key, probe, content_type=docs.CONTENT_TYPES[fmt], metadata=metadata,
                                  tags=decision.tags, retention=decision.retention, placement=decision.placement,
                                  size_hint=media.content_length)
        return stored, probe.header, got, "uploaded"
    except AlreadyExists:
        existing = store.head(key)
        if existing is None:
            raise
    if store.head(meta_key) is not None:
        raise DocumentExists(meta_key)
    # An earlier attempt stored the media and stopped before its document — or something else
    # wrote this key. Adopt it only if its bytes are the bytes Twilio serves for this recording.
    sha256_hex, header = stored_sha256(store, key)
    channels_stored = int(existing.metadata.get("requested-channels", channels))
    served_size, served_sha256 = _served_media(twilio, event, fmt=fmt, channels=channels_stored)
    if (existing.size, sha256_hex) != (served_size, served_sha256):
        raise IntegrityFailed(f"{key} holds an object that is not the media Twilio serves for "
                              f"{event.recording_sid} (size {existing.size} vs {served_size}); not adopted")
    return replace(existing, sha256_hex=sha256_hex), header, channels_stored, "verified-against-twilio"


def _resource_url(twilio: TwilioApi, event: RecordingStatusEvent) -> str:
    """Where this recording is fetched: the deployment's own API base, derived from the SIDs.

    The callback's RecordingUrl must still name an allowed Twilio host (a message that does
    not is refused before any request), but the worker never lets a message choose the host
    it sends credentials to.
    """
    assert event.recording_url is not None  # the event model requires it for `completed`
    twilio.require_allowed(event.recording_url)
    return twilio.recording_url(event.account_sid, event.recording_sid)


def _served_media(twilio: TwilioApi, event: RecordingStatusEvent, *, fmt: str, channels: int) -> tuple[int, str]:
    """(size, SHA-256) of the media Twilio serves now, streamed and discarded."""
    digest, size = hashlib.sha256(), 0
    with twilio.open_media(_resource_url(twilio, event), event.account_sid, fmt=fmt, channels=channels) as media:
        for chunk in media.chunks:
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
