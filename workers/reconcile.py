"""Find recordings Twilio has that the archive lacks, report the gap, and queue what is missing.

Used by `recvault reconcile` and by the daily reconcile task `recvault beat` schedules.
Twilio lists newest first and its pages shift when recordings are created while a client
pages, so a recording can come twice: each is counted once. A missing recording is queued
as the `completed` callback Twilio would have sent, through recvault's queue writer with
a dedup key per recording, so running reconcile again (by hand or by the schedule) queues
nothing twice. A recording that was erased (it has a tombstone) is not missing: it is reported
as erased and never queued, and when asked to queue, the refusal is an entry in its chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from recvault import documents as docs
from recvault import layout
from recvault.compliance.tombstones import is_erased, refuse_if_erased
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.storage.base import ObjectStore
from recvault.twilio.api import TwilioApi
from recvault.versions import MESSAGE_FIELD, MESSAGE_VERSION

# How long a recording queued by reconcile is not queued again, by the command or the daily run.
RECONCILE_DEDUP_SECONDS = 3600
# Twilio's largest list page.
MAX_PAGE_SIZE = 1000


@dataclass
class Gap:
    """One completed recording Twilio has and the archive does not."""

    sid: str
    account_sid: str
    start_time: str | None
    duration: str | None
    channels: int | None
    source: str | None
    # "queued", "already queued" (by an earlier run) or "missing"; "erased" for one erased on purpose.
    outcome: str = "missing"
    tombstone: str | None = None  # an erased recording's


@dataclass
class GapReport:
    """What one account's reconcile found in a date window."""

    account_sid: str
    date_from: str
    date_to: str | None
    pages: int = 0
    listed: int = 0  # distinct recordings Twilio listed
    repeated: int = 0  # listed again on a later page, counted once
    not_completed: int = 0  # absent, failed, in progress: no media to archive
    archived: int = 0
    missing: list[Gap] = field(default_factory=list)
    # Erased (or purged) from the archive on purpose, still at Twilio: never queued again.
    erased: list[Gap] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for gap in self.missing if gap.outcome == outcome)

    def summary(self) -> str:
        window = f"{self.date_from} to {self.date_to or 'now'}"
        queued = f" ({self.count('queued')} queued, {self.count('already queued')} already queued)" if any(
            gap.outcome != "missing" for gap in self.missing) else ""
        erased = f", {len(self.erased)} erased" if self.erased else ""
        return (f"{self.account_sid} {window}: {self.listed} listed at Twilio in {self.pages} page(s)"
                f" ({self.repeated} listed twice), {self.not_completed} not completed, {self.archived} archived"
                f"{erased}, {len(self.missing)} missing{queued}")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "queued": self.count("queued"), "already_queued": self.count("already queued")}


def reconcile(
    twilio: TwilioApi, store: ObjectStore, prefix: str, account_sid: str, *, date_from: str, date_to: str | None,
    page_size: int = MAX_PAGE_SIZE, enqueue: Callable[[dict[str, Any]], bool] | None = None,
    progress: Callable[[GapReport], None] | None = None,
) -> GapReport:
    """Compare Twilio's recordings created in the window with the archive; queue the gaps with `enqueue`."""
    report = GapReport(account_sid, date_from, date_to)
    seen: set[str] = set()
    fallback = datetime.now(UTC)
    for page in twilio.list_recording_pages(account_sid, created_after=date_from, created_before=date_to,
                                            page_size=page_size):
        report.pages += 1
        for recording in page:
            sid = recording.get("sid")
            if not isinstance(sid, str) or sid in seen:
                report.repeated += 1
                continue
            seen.add(sid)
            report.listed += 1
            if recording.get("status") != "completed":
                report.not_completed += 1
                continue
            day = docs.recording_date(recording.get("start_time"), fallback)
            if store.head(layout.metadata_key(prefix, day, sid)) is not None:
                report.archived += 1
                continue
            gap = Gap(sid, recording.get("account_sid") or account_sid, recording.get("start_time"),
                      recording.get("duration"), recording.get("channels"), recording.get("source"))
            # Asked to queue it, the refusal goes to its chain; a report alone only looks.
            gap.tombstone = (refuse_if_erased(store, prefix, sid, asked_by="reconcile", now=datetime.now(UTC))
                             if enqueue is not None else is_erased(store, prefix, sid))
            if gap.tombstone is not None:
                gap.outcome = "erased"
                report.erased.append(gap)
                continue
            if enqueue is not None:
                gap.outcome = "queued" if enqueue(recording) else "already queued"
            report.missing.append(gap)
        if progress is not None:
            progress(report)
    return report


def reconcile_writer(settings: Settings, app: Celery) -> QueueWriter:
    """A queue writer whose dedup keys hold for RECONCILE_DEDUP_SECONDS."""
    return QueueWriter.for_app(app, settings.queue, RECONCILE_DEDUP_SECONDS,
                               timeout=settings.redis_socket_timeout_seconds,
                               connect_timeout=settings.redis_connect_timeout_seconds)


def queue_missing(app: Celery, writer: QueueWriter, queue: str, twilio: TwilioApi) -> Callable[[dict], bool]:
    """`enqueue` for reconcile: the callback Twilio would have sent, once per recording; True if queued now."""
    def enqueue(recording: dict[str, Any]) -> bool:
        url = twilio.recording_url(recording["account_sid"], recording["sid"])
        payload = {MESSAGE_FIELD: MESSAGE_VERSION, "params": callback_params(recording, url),
                   "received_at": datetime.now(UTC).isoformat(), "idempotency_token": None}
        return writer.publish(build_message(app, queue, f"reconcile:{recording['sid']}", payload))
    return enqueue


def accounts_to_reconcile(settings: Settings) -> list[str]:
    """The main account and every subaccount recvault has tokens for."""
    accounts = [settings.twilio_account_sid] if settings.twilio_account_sid else []
    return accounts + [sid for sid in settings.twilio_subaccount_tokens if sid not in accounts]


def callback_params(recording: dict, recording_url: str) -> dict[str, str]:
    """The callback Twilio would have sent for a recording found by listing."""
    params = {
        "AccountSid": recording["account_sid"], "RecordingSid": recording["sid"],
        "RecordingUrl": recording_url, "RecordingStatus": "completed",
        "RecordingDuration": str(recording.get("duration") or 0),
        "RecordingChannels": str(recording.get("channels") or 1),
        "RecordingSource": recording.get("source") or "", "RecordingStartTime": recording.get("start_time") or "",
        "CallSid": recording.get("call_sid") or "", "ConferenceSid": recording.get("conference_sid") or "",
        "ErrorCode": str(recording.get("error_code") or 0),
    }
    return {k: v for k, v in params.items() if v}
