"""`recvault policy check` and `recvault policy explain`, through the command's entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recvault.cli import main
from recvault.compliance.policy import Policy
from recvault.layout import json_line, metadata_key

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "policy.example.toml"
HELD_ACCOUNT = "AC0123456789abcdef0123456789abcdef"
ERROR = "recvault: configuration error: "


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


def test_check_exits_2_naming_the_file_and_every_bad_field_of_the_rule(tmp_path, capsys) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\nmode = "GOVERNANCE"\n\n[[rule]]\nname = "finance-7y"\nretention_days = -7\n'
                    'storage_class = "DEEP_ARCHIVE"\ntenant = "acme"\n')
    assert main(["policy", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 3
    for field in ("retention_days", "storage_class", "tenant: unknown field"):
        assert any(line.startswith(f"{ERROR}{path}: policy rule 'finance-7y': ") and field in line
                   for line in lines), (field, lines)
    # A label written as a condition of its own: the message says how a label condition is written.
    assert any('labels = { tenant = "…" }' in line for line in lines)


def test_check_names_the_file_given_not_the_setting(env, tmp_path, capsys) -> None:
    # RECVAULT_POLICY_FILE names another (valid) file: the message is about the file checked.
    path = tmp_path / "policy.toml"
    path.write_text("[default\n")
    assert main(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "RECVAULT_POLICY_FILE" not in err and str(EXAMPLE) not in err
    assert err.splitlines()[0] == (f"{ERROR}{path}: line 1, column 9: not valid TOML: "
                                   "Expected ']' at the end of a table declaration")


def test_a_toml_syntax_error_shows_the_line_with_a_caret_under_the_spot(tmp_path, capsys) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\nretention_days = 30\nmode = GOVERNANCE\n')
    assert main(["policy", "check", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f'{ERROR}{path}: line 3, column 8: not valid TOML: Invalid value (text is written in quotes: "GOVERNANCE")',
        f"{ERROR}  3 | mode = GOVERNANCE",
        f"{ERROR}    |        ^",
    ]


def test_an_unknown_field_is_answered_with_the_field_meant(tmp_path, capsys) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\nretention_day = 30\n\n[[rule]]\nname = "short"\nmax_durration = 5\n')
    assert main(["policy", "check", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{ERROR}{path}: policy rule 'default': retention_day: unknown field; did you mean retention_days?"]
    path.write_text('[default]\n\n[[rule]]\nname = "short"\nmax_durration = 5\n')
    assert main(["policy", "check", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{ERROR}{path}: policy rule 'short': max_durration: unknown field; did you mean max_duration?"]


def test_none_is_spelt_as_the_docs_spell_it_in_what_is_accepted_and_in_errors(tmp_path, capsys) -> None:
    path = tmp_path / "policy.toml"
    for written in ('"none"', '"None"', '"NONE"'):
        path.write_text(f'[default]\nmode = {written}\n')
        assert main(["policy", "check", str(path)]) == 0, capsys.readouterr().err
        assert "default: everything else -> no retention lock" in capsys.readouterr().out
    path.write_text('[default]\nmode = "WORM"\n')
    assert main(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert 'mode: must be "COMPLIANCE", "GOVERNANCE" or "none", not "WORM"' in err and "NONE" not in err


def _recvault(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(variables)
    return subprocess.run([sys.executable, "-m", "recvault.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_worker_prints_each_policy_error_once_naming_the_setting(tmp_path, processes: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\nmode = "GOVERNANCE"\n\n[[rule]]\nname = "finance-7y"\nmode = "FOREVER"\n'
                    'tenant = "acme"\n')
    result = _recvault("worker", "--processes", processes, RECVAULT_POLICY_FILE=str(path),
                       RECVAULT_WORKER_METRICS_PORT="0", RECVAULT_DATA_DIR=str(tmp_path))
    assert result.returncode == 2
    where = f"{ERROR}{path} (RECVAULT_POLICY_FILE): policy rule 'finance-7y': "
    assert result.stderr.splitlines() == [
        f'{where}mode: must be "COMPLIANCE", "GOVERNANCE" or "none", not "FOREVER"',
        f'{where}tenant: unknown field; a condition on a callback label is written labels = {{ tenant = "…" }}']


def test_explain_names_the_policy_file_it_decides_with(env, tmp_path, capsys) -> None:
    assert main(["policy", "explain", "tenant=acme-securities"]) == 0
    assert f"  policy file:        {EXAMPLE} (RECVAULT_POLICY_FILE)\n" in capsys.readouterr().out
    other = tmp_path / "other.toml"
    other.write_text('[default]\nretention_days = 1\nmode = "GOVERNANCE"\n')
    assert main(["policy", "explain", "--policy", str(other), "--json", "tenant=acme-securities"]) == 0
    assert json.loads(capsys.readouterr().out)["policy_file"] == str(other)


def test_explain_says_when_no_policy_file_is_loaded(env, capsys) -> None:
    env.delenv("RECVAULT_POLICY_FILE")
    assert main(["policy", "explain", "RecordingSource=DialVerb", "tenant=acme-securities"]) == 0
    out = capsys.readouterr().out
    assert "  rule:               default\n" in out
    assert ("  policy file:        no policy file loaded (RECVAULT_POLICY_FILE is not set): "
            "the built-in default applies\n") in out
    assert main(["policy", "explain", "--json", "tenant=acme-securities"]) == 0
    assert json.loads(capsys.readouterr().out)["policy_file"] is None


def test_explain_with_a_broken_policy_file_names_the_setting(env, tmp_path, capsys) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\nmode = "none"\n[[rules]]\nname = "x"\n')
    env.setenv("RECVAULT_POLICY_FILE", str(path))
    assert main(["policy", "explain", "tenant=acme"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{ERROR}{path} (RECVAULT_POLICY_FILE): policy: unknown section [[rules]]; a policy has [default] and "
        "[[rule]] tables; did you mean [[rule]]?"]


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
    assert f"{path} (RECVAULT_POLICY_FILE): policy rule 'finance-7y': mode:" in capsys.readouterr().err
