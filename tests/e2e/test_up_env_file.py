"""The file `recvault up` leaves in its data directory: who reads it, and what wins over it.

Fast (no service is started): the system tests in test_up_second_terminal.py run the real thing.
"""

from __future__ import annotations

import os
import secrets
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from recvault.commands.up import _write_env_file
from recvault.settings import UP_ENV_FILE, Settings, load_settings

TOKEN = secrets.token_hex(16)
STACK = {"RECVAULT_BROKER_URL": "redis://127.0.0.1:41234/0", "RECVAULT_S3_ENDPOINT_URL": "http://127.0.0.1:8333",
         "RECVAULT_TWILIO_ACCOUNT_SID": "AC" + secrets.token_hex(16), "RECVAULT_TWILIO_AUTH_TOKENS": TOKEN,
         "RECVAULT_TWILIO_API_BASE_URL": "http://127.0.0.1:8180", "RECVAULT_API_TOKEN": secrets.token_hex(24)}
TOOLS = {"AWS_ACCESS_KEY_ID": "recvault-local", "AWS_SECRET_ACCESS_KEY": "recvault-local-secret"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("RECVAULT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def leave_file(data_dir: Path, **values: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / UP_ENV_FILE
    _write_env_file(path, {**STACK, "RECVAULT_DATA_DIR": str(data_dir.resolve()), **values}, TOOLS)
    return path


def test_a_command_run_next_to_up_reads_its_file_and_the_environment_wins(monkeypatch, tmp_path: Path) -> None:
    leave_file(tmp_path / ".recvault")
    (tmp_path / ".env").write_text("RECVAULT_BROKER_URL=redis://from-dotenv:1/0\nRECVAULT_QUEUE=from-dotenv\n")
    settings = load_settings()
    # What the running services use wins over .env; .env still gives what the file does not say.
    assert settings.broker_url == STACK["RECVAULT_BROKER_URL"]
    assert str(settings.s3_endpoint_url) == "http://127.0.0.1:8333/"
    assert settings.tokens_for(settings.twilio_account_sid) == [TOKEN]
    assert settings.queue == "from-dotenv"
    monkeypatch.setenv("RECVAULT_BROKER_URL", "redis://from-environment:2/0")
    assert load_settings().broker_url == "redis://from-environment:2/0"
    # `up` itself reads no previous run's file; env files off means this one too.
    monkeypatch.delenv("RECVAULT_BROKER_URL")
    assert load_settings(up_env_file=False).broker_url == "redis://from-dotenv:1/0"
    assert Settings(_env_file=None).broker_url == "redis://127.0.0.1:6379/0"


def test_the_file_is_looked_for_under_the_configured_data_dir_only(monkeypatch, tmp_path: Path) -> None:
    leave_file(tmp_path / "elsewhere")
    assert load_settings().broker_url == "redis://127.0.0.1:6379/0"  # none under ./.recvault
    monkeypatch.setenv("RECVAULT_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_settings().broker_url == STACK["RECVAULT_BROKER_URL"]
    monkeypatch.delenv("RECVAULT_DATA_DIR")
    (tmp_path / ".env").write_text(f"RECVAULT_DATA_DIR={tmp_path / 'elsewhere'}\n")
    assert load_settings().broker_url == STACK["RECVAULT_BROKER_URL"]
    assert Settings(data_dir=tmp_path / "nowhere").broker_url == "redis://127.0.0.1:6379/0"


def test_the_file_is_private_and_a_shell_sourcing_it_gets_what_recvault_reads(tmp_path: Path) -> None:
    data_dir = tmp_path / "a folder with $HOME and spaces" / ".recvault"
    path = leave_file(data_dir, RECVAULT_S3_PREFIX="calls/it's", RECVAULT_POLICY_FILE="/etc/a\\\\b 'c' $d")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = Settings(data_dir=data_dir)
    assert settings.data_dir == data_dir.resolve()
    shown = subprocess.run(["bash", "-c", f"source {shlex.quote(str(path))}; env -0"], env={"PATH": os.environ["PATH"]},
                           capture_output=True, text=True, timeout=30, check=True).stdout
    exported = dict(item.split("=", 1) for item in shown.split("\0") if "=" in item)
    assert exported["RECVAULT_DATA_DIR"] == str(data_dir.resolve())
    assert exported["RECVAULT_S3_PREFIX"] == settings.s3_prefix.rstrip("/") == "calls/it's"
    # A value neither form of quoting carries alike is left out (and up says so), never garbled.
    assert "RECVAULT_POLICY_FILE" not in exported and settings.policy_file is None
    assert {name: exported[name] for name in [*STACK, *TOOLS]} == {**STACK, **TOOLS}
    # Every RECVAULT_ name the file holds is a setting; the tools' variables are not recvault's.
    assert {name for name in exported if name.startswith("RECVAULT_")} <= {
        f"RECVAULT_{field.upper()}" for field in Settings.model_fields}
