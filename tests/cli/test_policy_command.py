"""`recvault policy check` and `recvault policy explain`, through the command's entry point."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recvault.cli import main
from recvault.compliance.policy import Policy
from recvault.layout import json_line, metadata_key

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "policy.example.toml"
HELD_ACCOUNT = "AC0123456789abcdef0123456789abcdef"


@pytest.fixture
def env(monkeypatch) -> pytest.MonkeyPatch:
    """No RECVAULT_ setting from the surrounding environment; the example policy configured."""
    for name in [name for name in os.environ if name.startswith("RECVAULT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RECVAULT_POLICY_FILE", str(EXAMPLE))
    return monkeypatch


def test_check_summarises_a_valid_file_in_rule_order(capsys) -> None:
    assert main(["policy", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{EXAMPLE}: valid; version {Policy.load(EXAMPLE).version}; 3 rule(s) and the default"
    assert out[1].startswith(f"  1. litigation-hold: account_sid={HELD_ACCOUNT} -> COMPLIANCE 2557 days, legal hold")
    assert out[2] == "  2. finance-7y: label tenant=acme-securities -> COMPLIANCE 2557 days, STANDARD_IA, " \
                     "Twilio delete permitted"
    assert out[4].strip() == "default: everything else -> GOVERNANCE 90 days, Twilio delete permitted"


def test_check_exits_2_naming_every_bad_field_of_the_rule(tmp_path, capsys) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\nmode = "GOVERNANCE"\n\n[[rule]]\nname = "finance-7y"\nretention_days = -7\n'
                    'storage_class = "DEEP_ARCHIVE"\ntenant = "acme"\n')
    assert main(["policy", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 3
    for field in ("retention_days", "storage_class", "tenant: unknown field"):
        assert any(line.startswith("recvault: configuration error: policy rule 'finance-7y': ") and field in line
                   for line in lines), (field, lines)


def test_check_names_the_file_when_it_is_not_toml(tmp_path, capsys) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[default\n")
    assert main(["policy", "check", str(path)]) == 2
    assert f"RECVAULT_POLICY_FILE {path}" in capsys.readouterr().err


def test_explain_callback_parameters_and_labels(env, capsys) -> None:
    assert main(["policy", "explain", "RecordingSource=DialVerb", f"AccountSid={HELD_ACCOUNT}",
                 "tenant=acme-securities"]) == 0
    out = capsys.readouterr().out
    assert "  rule:               litigation-hold" in out  # the account rule comes first
    assert "  legal hold:         yes" in out and "  KMS key:            alias/recvault-legal" in out
    assert "  delete from Twilio: not permitted" in out
    assert f"  policy version:     {Policy.load(EXAMPLE).version}" in out


def test_explain_as_json_tells_a_label_from_a_twilio_parameter(env, capsys) -> None:
    assert main(["policy", "explain", "--json", "RecordingStatus=absent", "tenant=acme-securities"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["labels"] == {"tenant": "acme-securities"}
    assert (answer["rule"], answer["mode"]) == ("finance-7y", "COMPLIANCE")
    assert int(answer["retain_until"][:4]) - datetime.now(UTC).year == 7  # 2557 days
    assert answer["storage_class"] == "STANDARD_IA" and answer["delete_from_twilio"] is True
    assert main(["policy", "explain", "--json", "RecordingSource=DialVerb"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert (default["rule"], default["mode"], default["labels"]) == ("default", "GOVERNANCE", {})


@pytest.mark.parametrize(("pairs", "reason"), [
    (["Tenant=acme"], "label name 'Tenant'"),
    (["tenant"], "'tenant' is not K=V"),
    (["RecordingChannels=two"], "RecordingChannels='two' is not a whole number"),
    (["--recording", "RE123"], "RE123: not a RecordingSid"),
])
def test_explain_refuses_bad_arguments_with_exit_2(env, capsys, pairs, reason) -> None:
    assert main(["policy", "explain", *pairs]) == 2
    assert reason in capsys.readouterr().err


def test_explain_a_recording_from_its_metadata_document(env, s3_store, capsys) -> None:
    sid = "RE" + "4" * 32
    document = {"sid": sid, "account_sid": "AC" + "5" * 32, "source": "DialVerb", "channels": 2, "duration": "60",
                "status": "completed", "labels": {"tenant": "acme-securities"}, "policy": "finance-7y",
                "policy_version": "0123456789abcdef", "retention_mode": "COMPLIANCE",
                "retain_until": "2033-03-01T09:00:00+00:00", "archived_at": "2026-03-01T09:00:00+00:00"}
    s3_store.put_bytes(metadata_key("", "2026-03-01", sid), json_line(document), content_type="application/json")
    env.setenv("RECVAULT_S3_BUCKET", s3_store.bucket)
    env.setenv("RECVAULT_S3_ENDPOINT_URL", s3_store.endpoint_url)
    assert main(["policy", "explain", "--recording", sid]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"recording {sid}:\n  labels:             tenant=acme-securities\n")
    assert "  rule:               finance-7y" in out
    assert "  retain until:       2033-03-01" in out  # 2557 days from when it was archived
    assert "archived under:     rule finance-7y, policy version 0123456789abcdef, COMPLIANCE until 2033-03-01" in out
    assert main(["policy", "explain", "--recording", "RE" + "6" * 32]) == 2
    assert "no metadata document in the archive" in capsys.readouterr().err


def test_beat_refuses_to_start_with_an_invalid_policy(env, tmp_path, capsys) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\n[[rule]]\nname = "finance-7y"\nmode = "FOREVER"\n')
    env.setenv("RECVAULT_POLICY_FILE", str(path))
    env.setenv("RECVAULT_DATA_DIR", str(tmp_path))
    assert main(["beat"]) == 2
    assert "policy rule 'finance-7y': mode:" in capsys.readouterr().err
