"""S3 lifecycle rules derived from the policy: expiry after each rule's retention, and the clean-up around it.

One expiration rule per policy rule, filtered by the `recvault-policy=<rule>` tag every media
object carries; then expiry of noncurrent versions, removal of delete markers left alone,
and abort of unfinished multipart uploads. S3 never removes a version that Object Lock
retention or a legal hold still protects, so these rules cannot cut a retention short.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from recvault.audit.write import write_system_audit
from recvault.compliance.policy import Policy
from recvault.storage.base import ObjectStore
from recvault.storage.s3_setup import ABORT_INCOMPLETE_DAYS, LIFECYCLE_RULE_ID

# Every rule recvault writes has an ID with this prefix; rules with other IDs are the operator's and kept.
RULE_PREFIX = "recvault-"
# The tag recvault puts on every media object, naming the policy rule that decided it.
POLICY_TAG = "recvault-policy"
# Days a version is kept once a newer version or a delete marker replaced it (its lock still applies).
NONCURRENT_DAYS = 1
# S3 caps a lifecycle rule ID at 255 characters.
MAX_RULE_ID = 255


def lifecycle_rules(policy: Policy, prefix: str = "", *, noncurrent_days: int = NONCURRENT_DAYS,
                    abort_days: int = ABORT_INCOMPLETE_DAYS) -> list[dict[str, Any]]:
    """The lifecycle rules for `policy`, in S3's PutBucketLifecycleConfiguration shape. Pure."""
    rules: list[dict[str, Any]] = []
    for rule in policy.all_rules():
        days = policy.effective_days(rule)
        if not days:
            continue  # kept for ever: no expiry
        tag = {"Key": POLICY_TAG, "Value": rule.name}
        rule_filter = {"And": {"Prefix": prefix, "Tags": [tag]}} if prefix else {"Tag": tag}
        rules.append({"ID": f"{RULE_PREFIX}expire-{rule.name}"[:MAX_RULE_ID], "Status": "Enabled",
                      "Filter": rule_filter, "Expiration": {"Days": days}})
    rules += [
        {"ID": f"{RULE_PREFIX}noncurrent-versions", "Status": "Enabled", "Filter": {"Prefix": prefix},
         "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days}},
        {"ID": f"{RULE_PREFIX}expired-delete-markers", "Status": "Enabled", "Filter": {"Prefix": prefix},
         "Expiration": {"ExpiredObjectDeleteMarker": True}},
        # The same ID as `init-bucket` writes, so the two never keep two copies of it.
        {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort_days}},
    ]
    return rules


def merged(existing: list[dict[str, Any]], ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's own rules (IDs not ours) kept, recvault's replaced by `ours`. Pure."""
    return [rule for rule in existing if not str(rule.get("ID", "")).startswith(RULE_PREFIX)] + ours


def apply_lifecycle(store: ObjectStore, prefix: str, rules: list[dict[str, Any]], *, actor: str,
                    now: datetime, policy_version: str | None = None) -> list[dict[str, Any]]:
    """Put the rules on the bucket beside the operator's own, record it, and return what the bucket now has."""
    store.put_lifecycle_rules(merged(store.lifecycle_rules(), rules))
    applied = store.lifecycle_rules()
    write_system_audit(store, prefix, "lifecycle-applied",
                       {"rules": [r["ID"] for r in rules], "policy_version": policy_version}, now, actor=actor)
    return applied
