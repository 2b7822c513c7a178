"""Retention policy decisions are pure and follow the first matching rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recvault.workers.policy import Policy, PolicyError

NOW = datetime(2026, 11, 24, tzinfo=UTC)
POLICY = {
    "default": {"retention_days": 30, "mode": "GOVERNANCE", "tags": {"classification": "call-recording"}},
    "rule": [
        {"name": "conference-7y", "source": ["Conference", "StartConferenceRecordingAPI"],
         "retention_days": 2555, "mode": "COMPLIANCE", "tags": {"retention-class": "7y"}},
        {"name": "long-dual", "channels": 2, "min_duration": 600, "legal_hold": True},
        {"name": "no-lock", "account_sid": "AC" + "f" * 32, "mode": "none"},
    ],
}


def recording(**fields):
    return {"account_sid": "AC" + "a" * 32, "source": "DialVerb", "channels": 1, "duration": "42", **fields}


def test_default_applies_when_no_rule_matches() -> None:
    decision = Policy.from_dict(POLICY).decide(recording(), now=NOW)
    assert decision.rule == "default"
    assert decision.retention.mode == "GOVERNANCE"
    assert decision.retention.until == NOW + timedelta(days=30)
    assert decision.tags == {"classification": "call-recording", "recvault-policy": "default",
                             "recvault-retain-until": "2026-12-24"}


def test_first_matching_rule_wins_and_inherits_unset_fields() -> None:
    policy = Policy.from_dict(POLICY)
    conference = policy.decide(recording(source="Conference", channels=2, duration="900"), now=NOW)
    assert conference.rule == "conference-7y" and conference.retention.mode == "COMPLIANCE"
    assert conference.tags["retention-class"] == "7y"
    long_dual = policy.decide(recording(channels=2, duration="900"), now=NOW)
    assert long_dual.rule == "long-dual" and long_dual.retention.legal_hold
    assert long_dual.retention.until == NOW + timedelta(days=30)  # inherited from default
    assert policy.decide(recording(channels=2, duration="599"), now=NOW).rule == "default"


def test_mode_none_means_no_lock() -> None:
    decision = Policy.from_dict(POLICY).decide(recording(account_sid="AC" + "f" * 32), now=NOW)
    assert decision.rule == "no-lock"
    assert decision.retention.mode is None and decision.retention.until is None
    assert "recvault-retain-until" not in decision.tags


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "r", "colour": "red"}, "unknown field"),
        ({"name": "r", "mode": "FOREVER"}, "mode must be"),
        ({"name": "r", "retention_days": -1}, "retention_days"),
        ({"name": "r", "tags": {"bad*key": "v"}}, "tag"),
        ({"name": "r", "tags": {f"k{i}": "v" for i in range(9)}}, "at most 8 tags"),
    ],
)
def test_malformed_rules_are_refused_with_the_rule_named(rule, message) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.from_dict({"rule": [rule]})


def test_policy_file_errors_name_the_setting(tmp_path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[default\nretention_days = 1")
    with pytest.raises(PolicyError, match="RECVAULT_POLICY_FILE"):
        Policy.load(path)
    path.write_text('[default]\nretention_days = 7\nmode = "COMPLIANCE"\n')
    assert Policy.load(path).decide(recording(), now=NOW).retention.until == NOW + timedelta(days=7)
