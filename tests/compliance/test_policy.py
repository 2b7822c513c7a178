"""Retention policy decisions are pure and follow the first matching rule."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recvault.compliance.policy import Policy, PolicyError
from recvault.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 24, tzinfo=UTC)
ACCOUNT = "AC" + "a" * 32
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
    return {"account_sid": ACCOUNT, "source": "DialVerb", "channels": 1, "duration": "42", **fields}


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


def test_no_policy_file_gives_the_builtin_default() -> None:
    decision = Policy.load(None).decide(recording(), now=NOW)
    assert (decision.rule, decision.retention.mode) == ("default", "GOVERNANCE")
    assert decision.retention.until == NOW + timedelta(days=365)
    assert decision.delete_from_twilio and decision.storage_class is None and decision.kms_key_id is None


# (rule as written, the field the message must name, what it must say)
BAD_RULES = [
    ({"colour": "red"}, "colour", "unknown field"),
    ({"mode": "FOREVER"}, "mode", "COMPLIANCE"),
    ({"retention_days": -1}, "retention_days", "greater than or equal to 0"),
    ({"retention_days": "7"}, "retention_days", "integer"),
    ({"legal_hold": "yes"}, "legal_hold", "boolean"),
    ({"delete_from_twilio": 1}, "delete_from_twilio", "boolean"),
    ({"tags": {"bad*key": "v"}}, "tags", "characters S3 refuses"),
    ({"tags": {f"k{i}": "v" for i in range(9)}}, "tags", "at most 8 tags"),
    ({"tags": {"recvault-policy": "x"}}, "tags", "set by recvault"),
    ({"storage_class": "COLD"}, "storage_class", "not an S3 storage class"),
    ({"storage_class": "DEEP_ARCHIVE"}, "storage_class", "without a restore"),
    ({"kms_key_id": "my key"}, "kms_key_id", "not a KMS key"),
    ({"account_sid": "AC123"}, "account_sid", "not an AccountSid"),
    ({"channels": 3}, "channels", "1 or 2"),
    ({"track": "left"}, "track", "inbound"),
    ({"min_duration": -5}, "min_duration", "greater than or equal to 0"),
    ({"min_duration": 60, "max_duration": 10}, "max_duration", "larger than"),
    ({"conference": "yes"}, "conference", "boolean"),
    ({"status": "done"}, "status", "not a recording status"),
    ({"error_code": "16101"}, "error_code", "integer"),
    ({"encrypted": 1}, "encrypted", "boolean"),
    ({"labels": {"Tenant": "acme"}}, "labels", "label name 'Tenant'"),
    ({"labels": {"tenant": "acme corp!"}}, "labels", "label 'tenant': value"),
    ({"labels": "tenant=acme"}, "labels", "dictionary"),
]


@pytest.mark.parametrize(("fields", "field", "reason"), BAD_RULES, ids=[case[1] + "-" + case[2] for case in BAD_RULES])
def test_every_validation_error_names_the_rule_and_the_field(fields, field, reason) -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_dict({"default": {}, "rule": [{"name": "finance-7y", **fields}]})
    message = str(raised.value)
    assert message.startswith("policy rule 'finance-7y': ")
    assert field in message and reason in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"rule": []}, "policy rule 'default': a [default] table is required"),
        ({"default": {"source": "DialVerb"}}, "policy rule 'default': source: unknown field"),
        ({"default": {"mode": "WORM"}}, "policy rule 'default': mode:"),
        ({"default": {}, "rules": []}, "policy: unknown section [[rules]]; a policy has [default] and [[rule]] "
                                        "tables; did you mean [[rule]]?"),
        ({"defaults": {"mode": "none"}}, "policy: unknown section [defaults]; a policy has [default] and [[rule]] "
                                         "tables; did you mean [default]?"),
        ({"default": {}, "rule": [{"mode": "none"}]}, "policy rule '#1': name: required"),
        ({"default": {}, "rule": [{"name": "a b"}]}, "policy rule 'a b': name: must be"),
        ({"default": {}, "rule": [{"name": "default"}]}, "policy rule 'default': name: must be"),
        ({"default": {}, "rule": ["x"]}, "policy rule '#1': must be a table"),
        ({"default": {}, "rule": [{"name": "a"}, {"name": "a"}]}, "policy rule 'a': name: used by more than one"),
        ({"default": {"tags": {f"d{i}": "v" for i in range(5)}},
          "rule": [{"name": "wide", "tags": {f"r{i}": "v" for i in range(4)}}]},
         "policy rule 'wide': tags: with the default's, more than 8 tags"),
    ],
)
def test_policy_level_errors_name_the_rule_or_section(data, expected) -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_dict(data)
    assert str(raised.value).startswith(expected)


def test_several_problems_in_one_rule_are_all_reported() -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_dict({"default": {}, "rule": [{"name": "r", "mode": "X", "channels": 5, "colour": 1}]})
    lines = str(raised.value).splitlines()
    assert sorted(line.split(":")[1].strip() for line in lines) == ["channels", "colour", "mode"]
    assert all(line.startswith("policy rule 'r': ") for line in lines)


# One rule per match key; the recording that matches it, and one that differs only there.
MATCHES = [
    ({"account_sid": ["AC" + "b" * 32, ACCOUNT]}, {}, {"account_sid": "AC" + "c" * 32}),
    ({"source": "RecordVerb"}, {"source": "RecordVerb"}, {}),
    ({"channels": 2}, {"channels": "2"}, {"channels": 1}),
    ({"track": ["inbound", "both"]}, {"track": "both"}, {"track": "outbound"}),
    ({"min_duration": 42}, {}, {"duration": "41"}),
    ({"max_duration": 42}, {}, {"duration": "43"}),
    ({"conference": True}, {"conference_sid": "CF" + "d" * 32}, {}),
    ({"conference": False}, {}, {"conference_sid": "CF" + "d" * 32}),
    ({"status": "absent"}, {"status": "absent"}, {"status": "completed"}),
    ({"error_code": [16101, 16102]}, {"error_code": "16102"}, {"error_code": 0}),
    ({"encrypted": True}, {"encryption_details": {"type": "rsa-cek"}}, {}),
]


@pytest.mark.parametrize(("condition", "matching", "other"), MATCHES, ids=[next(iter(m[0])) for m in MATCHES])
def test_each_match_key_selects_its_recordings(condition, matching, other) -> None:
    policy = Policy.from_dict({"default": {}, "rule": [{"name": "picked", **condition}]})
    assert policy.decide(recording(**matching), now=NOW).rule == "picked"
    assert policy.decide(recording(**other), now=NOW).rule == "default"


def test_labels_match_one_value_a_list_and_all_listed_labels() -> None:
    policy = Policy.from_dict({"default": {}, "rule": [
        {"name": "acme-explicit", "labels": {"tenant": "acme", "consent": ["explicit", "written"]}},
        {"name": "acme", "labels": {"tenant": "acme"}},
    ]})
    assert policy.decide(recording(), labels={"tenant": "acme", "consent": "written"}).rule == "acme-explicit"
    assert policy.decide(recording(), labels={"tenant": "acme", "consent": "none"}).rule == "acme"
    assert policy.decide(recording(), labels={"tenant": "acme"}).rule == "acme"
    assert policy.decide(recording(), labels={"tenant": "globex", "consent": "explicit"}).rule == "default"
    assert policy.decide(recording()).rule == "default"


def test_decision_fields_come_from_the_rule_or_fall_back_to_the_default() -> None:
    policy = Policy.from_dict({
        "default": {"storage_class": "STANDARD_IA", "kms_key_id": "alias/recvault", "delete_from_twilio": False,
                    "legal_hold": True},
        "rule": [{"name": "cheap", "source": "RecordVerb", "storage_class": "GLACIER_IR", "delete_from_twilio": True,
                  "legal_hold": False,
                  "kms_key_id": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}],
    })
    cheap = policy.decide(recording(source="RecordVerb"), now=NOW)
    assert cheap.storage_class == "GLACIER_IR" and cheap.delete_from_twilio and not cheap.retention.legal_hold
    assert cheap.kms_key_id.endswith(":key/1234abcd-12ab-34cd-56ef-1234567890ab")
    assert cheap.placement.params() == {"StorageClass": "GLACIER_IR", "ServerSideEncryption": "aws:kms",
                                        "SSEKMSKeyId": cheap.kms_key_id}
    other = policy.decide(recording(), now=NOW)
    assert (other.storage_class, other.kms_key_id) == ("STANDARD_IA", "alias/recvault")
    assert not other.delete_from_twilio and other.retention.legal_hold


def test_effective_helpers_and_all_rules_fill_gaps_from_the_default() -> None:
    policy = Policy.from_dict(POLICY)
    assert [rule.name for rule in policy.all_rules()] == ["conference-7y", "long-dual", "no-lock", "default"]
    conference, long_dual, no_lock, default = policy.all_rules()
    assert (policy.effective_days(conference), policy.effective_mode(conference)) == (2555, "COMPLIANCE")
    assert (policy.effective_days(long_dual), policy.effective_mode(long_dual)) == (30, "GOVERNANCE")
    assert policy.effective_mode(no_lock) is None
    assert (policy.effective_days(default), policy.effective_mode(default)) == (30, "GOVERNANCE")
    assert policy.rules_that_lock_nothing() == ["no-lock"]


def test_policy_version_is_a_hash_of_the_file_bytes(tmp_path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\nretention_days = 7\nmode = "COMPLIANCE"\n')
    policy = Policy.load(path)
    assert policy.version == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert policy.decide(recording(), now=NOW).policy_version == policy.version
    path.write_text('[default]\nretention_days = 7\nmode = "COMPLIANCE"\n# reviewed\n')
    assert Policy.load(path).version != policy.version


def test_policy_file_errors_name_the_file_and_the_setting_it_came_from(tmp_path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[default\nretention_days = 1")
    with pytest.raises(PolicyError) as raised:
        Policy.load(path)
    assert str(raised.value).startswith(f"{path}: line 1, column 9: not valid TOML: ")
    with pytest.raises(PolicyError) as raised:
        Policy.from_settings(Settings(policy_file=path))
    assert str(raised.value).startswith(f"{path} (RECVAULT_POLICY_FILE): line 1, column 9: ")
    path.write_text('[default]\nretention_days = 7\nmode = "COMPLIANCE"\n')
    assert Policy.load(path).decide(recording(), now=NOW).retention.until == NOW + timedelta(days=7)
    with pytest.raises(PolicyError, match=f"^{tmp_path / 'missing.toml'}: cannot be read: No such file"):
        Policy.load(tmp_path / "missing.toml")


def test_every_line_of_a_rule_error_names_the_file(tmp_path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\n[[rule]]\nname = "r"\nmode = "X"\nchannels = 5\n')
    with pytest.raises(PolicyError) as raised:
        Policy.from_settings(Settings(policy_file=path))
    lines = str(raised.value).splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{path} (RECVAULT_POLICY_FILE): policy rule 'r': ")
                                   for line in lines)


@pytest.mark.parametrize(("text", "expected"), [
    # (file, the three lines: where and why, the line, the caret)
    ('[default]\nmode = COMPLIANCE\n',
     ['line 2, column 8: not valid TOML: Invalid value (text is written in quotes: "COMPLIANCE")',
      "  2 | mode = COMPLIANCE", "    |        ^"]),
    ('[default]\ntags = { a = "b"\n',
     ["line 2, column 17: not valid TOML: Unclosed inline table", '  2 | tags = { a = "b"', "    |                 ^"]),
    ('[default]\n\tretention_days = = 3\n',
     ["line 2, column 19: not valid TOML: Invalid value", "  2 | \tretention_days = = 3",
      "    | \t" + " " * 17 + "^"]),  # a tab before the spot stays a tab, so the caret lines up
    ('[default]\nmode = "GOVERNANCE',
     ["line 2, column 19: not valid TOML: Unterminated string", '  2 | mode = "GOVERNANCE',
      "    |                   ^"]),
])
def test_a_toml_syntax_error_shows_its_line_and_a_caret(tmp_path, text: str, expected: list[str]) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as raised:
        Policy.load(path)
    first, *rest = str(raised.value).splitlines()
    assert [first.removeprefix(f"{path}: "), *rest] == expected


@pytest.mark.parametrize(("fields", "expected"), [
    ({"retention_day": 3}, "retention_day: unknown field; did you mean retention_days?"),
    ({"legalhold": True}, "legalhold: unknown field; did you mean legal_hold?"),
    ({"sources": "DialVerb"}, "sources: unknown field; did you mean source?"),
    ({"tenant": "acme"}, 'tenant: unknown field; a condition on a callback label is written labels = { tenant = "…" }'),
    ({"Colour": "red"}, "Colour: unknown field; known fields: mode, retention_days"),
])
def test_an_unknown_field_names_the_field_meant(fields, expected) -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_dict({"default": {}, "rule": [{"name": "r", **fields}]})
    assert str(raised.value).startswith(f"policy rule 'r': {expected}")


def test_a_condition_in_the_default_says_where_conditions_go() -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_dict({"default": {"labels": {"tenant": "acme"}}})
    assert str(raised.value) == ("policy rule 'default': labels: unknown field in [default], which applies to "
                                 "everything no rule matches; conditions go in [[rule]] tables")


@pytest.mark.parametrize("written", ["none", "None", "NONE", " none "])
def test_no_lock_is_none_however_it_is_cased(written: str) -> None:
    policy = Policy.from_dict({"default": {"mode": written}})
    assert policy.default.mode == "none" and policy.effective_mode(policy.default) is None


@pytest.mark.parametrize("written", ["compliance", "Governance"])
def test_lock_modes_are_taken_in_any_case(written: str) -> None:
    assert Policy.from_dict({"default": {"mode": written}}).default.mode == written.upper()


@pytest.mark.parametrize(("written", "shown"), [("FOREVER", '"FOREVER"'), (1, "1"), (True, "true")])
def test_a_bad_mode_lists_the_modes_as_the_docs_write_them(written: object, shown: str) -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_dict({"default": {"mode": written}})
    assert str(raised.value) == ("policy rule 'default': mode: must be "
                                 f'"COMPLIANCE", "GOVERNANCE" or "none", not {shown}')


def test_the_example_policy_in_deploy_loads_and_decides_as_documented() -> None:
    policy = Policy.load(ROOT / "deploy" / "policy.example.toml")
    finance = policy.decide(recording(), labels={"tenant": "acme-securities"}, now=NOW)
    assert (finance.rule, finance.retention.mode, finance.storage_class) == ("finance-7y", "COMPLIANCE", "STANDARD_IA")
    assert finance.retention.until == NOW + timedelta(days=2557)
    held = policy.decide(recording(account_sid="AC0123456789abcdef0123456789abcdef"),
                         labels={"tenant": "acme-securities"}, now=NOW)
    assert held.rule == "litigation-hold" and held.retention.legal_hold and not held.delete_from_twilio
    other = policy.decide(recording(), labels={"tenant": "globex"}, now=NOW)
    assert (other.rule, other.retention.mode, other.retention.until) == ("default", "GOVERNANCE",
                                                                        NOW + timedelta(days=90))
    assert policy.decide(recording(status="absent"), now=NOW).rule == "failed-short"
