"""Lifecycle rules from the policy: their shape, and applying them to SeaweedFS beside an operator's own rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from recvault.compliance.lifecycle import apply_lifecycle, lifecycle_rules
from recvault.compliance.policy import Policy
from recvault.storage.s3_setup import ABORT_INCOMPLETE_DAYS, LIFECYCLE_RULE_ID
from tests.compliance.seed import audit_trail

POLICY = Policy.from_dict({
    "default": {"retention_days": 90, "mode": "GOVERNANCE"},
    "rule": [{"name": "finance-7y", "account_sid": "AC" + "1" * 32, "retention_days": 2555, "mode": "COMPLIANCE"},
             {"name": "keep-forever", "source": ["Conference"], "retention_days": 0}],
})


def test_one_expiry_rule_per_policy_rule_by_its_tag_then_versions_markers_and_uploads() -> None:
    rules = {rule["ID"]: rule for rule in lifecycle_rules(POLICY, "calls/")}

    assert list(rules) == ["recvault-expire-finance-7y", "recvault-expire-default", "recvault-noncurrent-versions",
                           "recvault-expired-delete-markers", LIFECYCLE_RULE_ID]  # keep-forever: no expiry
    assert rules["recvault-expire-finance-7y"] == {
        "ID": "recvault-expire-finance-7y", "Status": "Enabled", "Expiration": {"Days": 2555},
        "Filter": {"And": {"Prefix": "calls/", "Tags": [{"Key": "recvault-policy", "Value": "finance-7y"}]}}}
    assert rules["recvault-expire-default"]["Expiration"] == {"Days": 90}
    assert rules["recvault-noncurrent-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert rules["recvault-expired-delete-markers"]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert rules[LIFECYCLE_RULE_ID]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": ABORT_INCOMPLETE_DAYS}
    no_prefix = lifecycle_rules(POLICY)[0]
    assert no_prefix["Filter"] == {"Tag": {"Key": "recvault-policy", "Value": "finance-7y"}}


def test_apply_puts_the_rules_on_the_bucket_keeps_the_operators_rule_and_records_it(s3_store) -> None:
    theirs = {"ID": "logs-30d", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
    s3_store.put_lifecycle_rules([theirs, {"ID": "recvault-expire-old-rule", "Status": "Enabled",
                                           "Filter": {"Prefix": ""}, "Expiration": {"Days": 5}}])
    rules = lifecycle_rules(POLICY)

    applied = apply_lifecycle(s3_store, "", rules, actor="ops", now=datetime.now(UTC), policy_version="abc123")

    assert [r["ID"] for r in applied] == ["logs-30d", *[r["ID"] for r in rules]]
    assert {json.dumps(r, sort_keys=True) for r in rules} <= {json.dumps(r, sort_keys=True) for r in applied}
    ((_, record),) = audit_trail(s3_store, "", action="lifecycle-applied")
    assert (record["action"], record["actor"], record["policy_version"]) == ("lifecycle-applied", "ops", "abc123")
    assert record["rules"] == [r["ID"] for r in rules]
