"""Turn a finished scenario into figures: archived, dead-lettered, lost, duplicated, and checks.

An accepted event is *archived* when its document is in the bucket — for `completed`, a
metadata document whose media, re-read from S3, has the simulator's SHA-256 — *dead-lettered*
when the dead-letter store holds it, and *lost* when neither. It is *duplicated* when
ingest queued it more than once (the Redis AOF ledger), or the bucket holds more than one
media object, media version, metadata document, event version or "archived" audit record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from tests.faults.archive_view import Snapshot
from tests.faults.harness import Stack
from tests.faults.ledger import QueueLedger, first_value
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Event

# How long the archive must look unchanged before a scenario is judged, so that a late
# duplicate (a redelivered message, a retry) has the chance to show up.
QUIET_SECONDS = 2.0


def resolved(stack: Stack, events: set[Event]) -> set[Event]:
    """Events with a document in the bucket or a letter in the dead-letter store."""
    documents = set()
    for key in stack.view.list_keys("metadata/"):
        documents.add((key.rsplit("/", 1)[-1].removesuffix(".json"), "completed"))
    for key in stack.view.list_keys("events/"):
        sid, _, status = key.rsplit("/", 1)[-1].removesuffix(".json").partition("-")
        documents.add((sid, status))
    letters = letters_by_event(stack)
    return {event for event in events if event in documents or event in letters}


def letters_by_event(stack: Stack) -> dict[Event, dict]:
    """Dead letters by the event their payload names (unparseable ones are filed by task id)."""
    letters = {}
    for letter in stack.dead_letters().values():
        params = (letter.get("payload") or {}).get("params") or {}
        sid, status = params.get("RecordingSid"), params.get("RecordingStatus")
        letters[(first_value(sid), first_value(status))] = letter
    return letters


def settle(stack: Stack, events: set[Event], *, timeout: float) -> float:
    """Wait until every event is resolved and the queue has been idle a while; seconds waited."""
    started = time.monotonic()
    quiet_since: float | None = None
    while time.monotonic() - started < timeout:
        try:
            done = resolved(stack, events) == events and stack.queue_idle()
        except Exception:  # a service may be coming back; try again
            done = False
        if not done:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_SECONDS:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def judge(stack: Stack, result: ScenarioResult, accepted: set[Event], *, signed: set[Event],
          expect_dead: Iterable[Event] = ()) -> ScenarioResult:
    """Fill in `result` from the bucket, the dead-letter store, the ledger and the logs.

    `signed` holds every event something legitimate may have queued: callbacks sent with a
    valid signature, and messages a scenario put on the queue itself.
    """
    snap = stack.view.snapshot()
    ledger = stack.ledger()
    letters = letters_by_event(stack)
    verified = _verify_media(stack, snap, {sid for sid, status in accepted if status == "completed"})
    result.accepted = len(accepted)
    expect_dead = set(expect_dead)
    for event in sorted(accepted):
        sid, status = event
        archived = verified.get(sid) is None if status == "completed" else bool(snap.events.get(event))
        letter = letters.get(event)
        if archived:
            result.archived += 1
            if letter is not None:
                result.problems.append(f"{sid}:{status} archived and also dead-lettered ({letter['error']})")
        elif letter is not None:
            result.dead_lettered += 1
            if not letter.get("reason"):
                result.problems.append(f"{sid}:{status} dead-lettered without a reason")
        else:
            result.lost += 1
            if status == "completed" and sid in verified:
                result.notes.append(f"lost {sid}: {verified[sid]}")
        if _duplicated(snap, ledger, event):
            result.duplicated += 1
        if event in expect_dead and archived:
            result.problems.append(f"{sid}:{status} archived, but Twilio never had good media for it")
        if event not in expect_dead and letter is not None and not archived:
            result.problems.append(f"{sid}:{status} dead-lettered: {letter['error']}: {letter['reason']}")
    if stack.options.delete_after_archive:
        kept = [sid for sid, problem in verified.items() if problem is None and not stack.sim.state.get(sid).deleted]
        if kept:
            result.problems.append(f"{len(kept)} archived recordings never deleted from Twilio: {kept[:3]}")
    result.problems += common_checks(stack, snap, ledger, signed)
    if stack.pool.restarts:
        statuses = ", ".join(f"{name} exit {code}" for name, code in stack.pool.restarts)
        result.notes.append(f"workers that stopped on their own, started again by the supervisor: {statuses}")
    return result


def _duplicated(snap: Snapshot, ledger: QueueLedger, event: Event) -> bool:
    sid, status = event
    if ledger.pushes[event] > 1:
        return True
    if status == "completed":
        media = snap.media.get(sid, [])
        return (len(media) > 1 or any(snap.versions[key] > 1 for key in media)
                or len(snap.metadata.get(sid, [])) > 1 or snap.audit[(sid, "archived")] > 1)
    keys = snap.events.get(event, [])
    return len(keys) > 1 or any(snap.versions[key] > 1 for key in keys) or snap.audit[(sid, f"event-{status}")] > 1


def _verify_media(stack: Stack, snap: Snapshot, sids: set[str]) -> dict[str, str | None]:
    """Per RecordingSid: None when its one document and the stored bytes match, else why not."""

    def check(sid: str) -> str | None:
        keys = snap.metadata.get(sid, [])
        if not keys:
            return "no metadata document"
        document = stack.view.document(keys[0])
        try:
            size, sha256 = stack.expected_media(sid)
        except KeyError:
            return "Twilio has no such recording"
        if document.get("media_sha256") != sha256 or document.get("media_size") != size:
            return "the document's size or SHA-256 is not the recording's"
        if stack.view.sha256(document["media_key"]) != sha256:
            return "the stored media's SHA-256 is not the recording's"
        return None

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(sorted(sids), pool.map(check, sorted(sids)), strict=True))


def common_checks(stack: Stack, snap: Snapshot, ledger: QueueLedger, signed: set[Event]) -> list[str]:
    """What must hold after every scenario, whatever was injected."""
    problems = []
    if snap.uploads:
        problems.append(f"{len(snap.uploads)} incomplete multipart uploads left: {snap.uploads[:3]}")
    if snap.odd_keys:
        problems.append(f"{len(snap.odd_keys)} keys outside recvault's layout: {snap.odd_keys[:3]!r}")
    if snap.delete_markers:
        problems.append(f"{len(snap.delete_markers)} delete markers: {snap.delete_markers[:3]!r}")
    unsigned = set(ledger.pushes) - signed
    if unsigned:
        problems.append(f"{len(unsigned)} events queued that nobody signed: {sorted(unsigned)[:3]}")
    for deletion in stack.sim.deletions:
        if deletion.problem is not None:
            problems.append(f"Twilio DELETE of {deletion.recording_sid} before a verified copy: {deletion.problem}")
    silent = [name for name, code in stack.pool.restarts if code == 0]
    if silent:
        problems.append(f"workers stopped on their own with exit status 0 (a supervisor would not notice): {silent}")
    if stack.foreign.requests:
        problems.append(f"the foreign host received {len(stack.foreign.requests)} requests: "
                        f"{stack.foreign.requests[:3]}")
    problems += leaked_secrets(stack)
    return problems


def leaked_secrets(stack: Stack) -> list[str]:
    """Secrets found in any log file, named with the file they are in."""
    found = []
    for path in stack.log_files():
        data = path.read_bytes() if path.exists() else b""
        found += [f"{name} in {path.name}" for name, value in stack.secrets().items() if value.encode() in data]
    return found
