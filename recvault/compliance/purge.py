"""Purge: delete recordings whose retention has ended, for stores that do not run S3 lifecycle rules.

A recording is due when its retain-until (or, without one, its archive time plus its policy
rule's days) has passed, no active hold covers it and no version of it is still locked.
Each is checked version by version before anything is deleted, and the store refuses a
locked delete in any case; what is purged leaves a tombstone and a `purged` audit record
naming its SHA-256. A recording whose document does not match it (names another recording's
media, or is not the version its chain last recorded) is kept, with a `purge-refused` entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from recvault.audit.write import stamped, write_audit, write_system_audit
from recvault.compliance.erasure import Outcome, check, delete_all
from recvault.compliance.holds import holds_covering, list_holds
from recvault.compliance.policy import Policy
from recvault.compliance.recording_objects import audit_retention, documents, mismatch
from recvault.days import parse_day
from recvault.layout import retention_fields
from recvault.storage.base import ObjectStore, Retention

PURGE_ACTOR = "recvault purge"
PURGE_REASON = "retention ended"


@dataclass
class PurgeReport:
    """What one purge run found and did."""

    dry_run: bool
    examined: int = 0
    not_due: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def summary(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "examined": self.examined, "not_due": self.not_due,
                "purged": self.count("purged"), "due": self.count("due"), "kept": self.count("refused"),
                "mismatched": self.count("mismatch")}


def expires_at(document: dict[str, Any], policy: Policy | None) -> datetime | None:
    """When a recording's retention ends: its retain-until, else archive time + its rule's days. Pure."""
    _, until, _ = retention_fields(document)
    if until is not None:
        return until
    name = document.get("policy")
    rule = next((r for r in policy.all_rules() if r.name == name), None) if policy else None
    days = policy.effective_days(rule) if policy and rule else None
    archived = document.get("archived_at")
    return datetime.fromisoformat(archived) + timedelta(days=days) if days and archived else None


def purge(store: ObjectStore, prefix: str, *, now: datetime, policy: Policy | None = None,
          date_before: str | None = None, dry_run: bool = False, actor: str = PURGE_ACTOR,
          record_retention: Retention | None = None) -> PurgeReport:
    """Delete every version of each due recording (recordings of days before `date_before` only, when given);
    `record_retention`: the lock of each tombstone and its `purged` entry."""
    report = PurgeReport(dry_run)
    holds = list_holds(store, prefix)
    last_day = (parse_day(date_before) - timedelta(days=1)).isoformat() if date_before else None
    for located in documents(store, prefix, date_to=last_day):
        report.examined += 1
        document = located.document or {}
        end = expires_at(document, policy)
        if end is None or end > now:
            report.not_due += 1
            continue
        problem = mismatch(store, prefix, located)
        if problem is not None:
            if not dry_run:
                write_audit(store, prefix, located.sid, "purge-refused",
                            {"reason": PURGE_REASON, "refused_because": [problem]},
                            audit_retention(document, now), stamped(now), actor=actor)
            report.outcomes.append(Outcome(located.sid, "mismatch", problem=problem))
            continue
        found, refusal = check(store, located, holds_covering(holds, located.sid), now)
        if refusal is not None:
            report.outcomes.append(Outcome(located.sid, "refused", refusal))
            continue
        if dry_run:
            report.outcomes.append(Outcome(located.sid, "due", objects=len(found)))
            continue
        tombstone = delete_all(store, prefix, located, found, action="purged", requested_by=actor,
                               reason=PURGE_REASON, now=now, actor=actor,
                               details={"reason": PURGE_REASON, "expired_at": end.isoformat(), "objects": len(found),
                                        "policy_rule": document.get("policy")},
                               record_retention=record_retention)
        report.outcomes.append(Outcome(located.sid, "purged", tombstone=tombstone, objects=len(found)))
    if not dry_run:
        write_system_audit(store, prefix, "purge-run", {**report.summary(), "date_before": date_before}, stamped(now),
                           actor=actor)
    return report
