"""Erasure and purge act on the keys the layout gives a recording, and refuse a document that says otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from recvault import layout
from recvault.compliance.erasure import erase
from recvault.compliance.policy import Policy
from recvault.compliance.purge import purge
from recvault.compliance.recording_objects import Located, derived_media_key, document_mismatch, locate
from tests.compliance.seed import audit_trail, seed

SID, OTHER, ACCOUNT = "RE" + "1" * 32, "RE" + "2" * 32, "AC" + "3" * 32
DAY = "2026-11-24"
MEDIA = layout.media_key("", DAY, ACCOUNT, SID, "wav")
META = layout.metadata_key("", DAY, SID)


def located(document: dict, sha256: str = "a" * 64) -> Located:
    return Located(SID, DAY, document, document_sha256=sha256)


def test_the_media_key_is_derived_from_the_day_the_account_the_sid_and_the_format() -> None:
    document = {"sid": SID, "account_sid": ACCOUNT, "media_key": "anything", "media_format": "mp3"}
    assert derived_media_key("p/", DAY, SID, document) == layout.media_key("p/", DAY, ACCOUNT, SID, "mp3")
    # Older documents name no format: their key's own extension, if it is one the archive writes.
    assert derived_media_key("", DAY, SID, {"account_sid": ACCOUNT, "media_key": MEDIA}) == MEDIA
    assert derived_media_key("", DAY, SID, {"account_sid": ACCOUNT, "media_key": "x/RE1.exe"}) is None
    assert derived_media_key("", DAY, SID, {"account_sid": ACCOUNT}) is None  # nothing archived
    assert derived_media_key("", DAY, SID, {"media_key": MEDIA}) is None


def test_a_document_is_refused_when_it_is_another_recordings_names_other_media_or_is_not_the_vouched_version() -> None:
    good = {"sid": SID, "account_sid": ACCOUNT, "media_key": MEDIA, "media_format": "wav"}
    assert document_mismatch(located(good), META, MEDIA, ["a" * 64]) is None
    assert document_mismatch(located(good), META, MEDIA, ["0" * 64, "a" * 64]) is None  # the latest one

    victim = layout.media_key("", DAY, ACCOUNT, OTHER, "wav")
    wrong = document_mismatch(located({**good, "media_key": victim}), META, MEDIA, [])
    assert wrong == f"{SID}: the document at {META} names media key {victim}; the layout gives {MEDIA}"
    assert f"is recording {OTHER}'s" in str(document_mismatch(located({**good, "sid": OTHER}), META, MEDIA, []))
    stale = document_mismatch(located(good), META, MEDIA, ["a" * 64, "b" * 64])
    assert stale is not None and "is not the one its audit chain last recorded" in stale and MEDIA in stale
    # A chain written before document writes were hashed: the keys are the only check.
    assert document_mismatch(located(good, sha256="f" * 64), META, MEDIA, []) is None


def test_erase_of_a_recording_whose_document_names_another_recordings_media_deletes_nothing(vault, prefix) -> None:
    victim, attacker = seed(vault, prefix=prefix), seed(vault, prefix=prefix)
    document = json.loads(vault.get_bytes(attacker.metadata_key))
    vault.put_bytes(attacker.metadata_key, layout.json_line({**document, "media_key": victim.media_key}),
                    content_type="application/json", create_only=False)
    before = {key: list(vault.list_versions(key)) for key in [*victim.keys, *attacker.keys]}

    outcome = erase(vault, prefix, attacker.sid, reason="DSAR 5", requested_by="subject", actor="dpo",
                    now=datetime.now(UTC), when_allowed=True)

    assert outcome.status == "mismatch" and outcome.problem is not None
    assert victim.media_key in outcome.problem and attacker.media_key in outcome.problem
    assert {key: list(vault.list_versions(key)) for key in before} == before
    assert vault.head(layout.tombstone_key(prefix, attacker.sid)) is None
    assert vault.head(layout.erasure_key(prefix, attacker.sid, "pending")) is None  # not queued either
    (_, refused), = audit_trail(vault, prefix, attacker.sid, "erase-refused")
    assert refused["refused_because"] == [outcome.problem]
    # Holds act on the derived keys too: a hold on the attacker's recording leaves the victim's media alone.
    assert locate(vault, prefix, attacker.sid).keys[0] == attacker.media_key


def test_purge_keeps_a_recording_whose_document_names_another_recordings_media(vault, prefix) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    victim, attacker = seed(vault, prefix=prefix), seed(vault, prefix=prefix, recorded_until=past)
    document = json.loads(vault.get_bytes(attacker.metadata_key))
    vault.put_bytes(attacker.metadata_key, layout.json_line({**document, "media_key": victim.media_key}),
                    content_type="application/json", create_only=False)

    report = purge(vault, prefix, now=datetime.now(UTC), actor="ops")

    [outcome] = [o for o in report.outcomes if o.recording_sid == attacker.sid]
    assert outcome.status == "mismatch" and victim.media_key in str(outcome.problem)
    assert report.summary()["mismatched"] == 1 and report.count("purged") == 0
    assert vault.head(victim.media_key) is not None and vault.head(attacker.media_key) is not None
    assert [r["refused_because"] for _, r in audit_trail(vault, prefix, attacker.sid, "purge-refused")] == [
        [outcome.problem]]


def test_erase_refuses_a_document_version_its_chain_did_not_record(archive_env, sim) -> None:
    archive_env.policy = Policy.from_dict({"default": {"retention_days": 30, "mode": "none"}})
    result = archive_env.archive(sim.create_recording(duration=2))
    store = archive_env.store
    document = json.loads(store.get_bytes(result.key))
    store.put_bytes(result.key, layout.json_line({**document, "price": "-9.99"}),
                    content_type="application/json", create_only=False)

    outcome = erase(store, "", document["sid"], reason="DSAR 6", requested_by="subject", actor="dpo",
                    now=datetime.now(UTC))

    assert outcome.status == "mismatch" and "is not the one its audit chain last recorded" in str(outcome.problem)
    assert result.media is not None and store.head(result.media.key) is not None
    # Put back as recvault wrote it, the same document is erased.
    store.put_bytes(result.key, layout.json_line(document), content_type="application/json", create_only=False)
    assert erase(store, "", document["sid"], reason="DSAR 6", requested_by="subject", actor="dpo",
                 now=datetime.now(UTC)).status == "erased"
