"""The `recvault` command: its subcommands, and one clear line for every configuration error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from recvault.cli import COMMANDS
from recvault.launch.services import free_port


def recvault(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(variables)
    return subprocess.run([sys.executable, "-m", "recvault.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_help_lists_every_subcommand_the_contract_names() -> None:
    result = recvault("--help")
    assert result.returncode == 0
    for name in ("serve", "worker", "simulate", "audit", "reconcile", "dlq", "up"):
        assert name in COMMANDS and f"    {name}" in result.stdout


def test_building_the_parser_loads_no_subcommands_libraries() -> None:
    # Every `recvault` process (each worker of a group too) builds the whole parser: what one
    # subcommand needs (the simulator's aiohttp client, boto3, Celery) is loaded in its run().
    heavy = ("aiohttp", "botocore", "celery", "kombu", "twilio", "redis")
    probe = f"import sys, recvault.cli; recvault.cli.build_parser(); print(sorted(set({heavy!r}) & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_an_unknown_subcommand_is_a_usage_error() -> None:
    result = recvault("archive-everything")
    assert result.returncode == 2 and "invalid choice" in result.stderr


@pytest.mark.parametrize(("variables", "expected"), [
    ({"RECVAULT_BROKER_TRANSPORT_OPTIONS": "master_name=x"}, "RECVAULT_BROKER_TRANSPORT_OPTIONS: not valid JSON"),
    ({"RECVAULT_TWILIO_SUBACCOUNT_TOKENS": "{"}, "RECVAULT_TWILIO_SUBACCOUNT_TOKENS: not valid JSON"),
    ({"RECVAULT_VISIBILITY_TIMEOUT_SECONDS": "soon"}, "RECVAULT_VISIBILITY_TIMEOUT_SECONDS:"),
    ({"RECVAULT_BROKER_URL": "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380"},
     "RECVAULT_BROKER_URL: sentinel:// needs the master's name"),
])
def test_a_bad_setting_is_one_line_naming_it_for_any_command(variables: dict[str, str], expected: str) -> None:
    result = recvault("dlq", "list", **variables)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recvault: configuration error: ")
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_broker_options_its_writer_cannot_honour() -> None:
    result = recvault("serve", "--port", str(free_port()), RECVAULT_TWILIO_AUTH_TOKENS="a-real-token-value",
                      RECVAULT_BROKER_TRANSPORT_OPTIONS='{"ack_emulation": false}')
    assert result.returncode == 2
    assert "RECVAULT_BROKER_TRANSPORT_OPTIONS: ack_emulation=False is not supported" in result.stderr
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stderr  # refused before it opened a port


def test_an_old_variable_name_works_and_the_command_says_on_stderr_what_replaces_it() -> None:
    old = recvault("policy", "explain", "RecordingSource=DialVerb", RECVAULT_TASK_TIME_LIMIT="600")
    assert old.returncode == 0, old.stderr
    assert old.stderr.splitlines() == ["RECVAULT_TASK_TIME_LIMIT is deprecated; use RECVAULT_TASK_TIME_LIMIT_SECONDS"]
    bad = recvault("dlq", "list", RECVAULT_VISIBILITY_TIMEOUT="soon")  # the value is checked under the new name
    assert bad.returncode == 2
    warning, error = bad.stderr.splitlines()
    assert warning == "RECVAULT_VISIBILITY_TIMEOUT is deprecated; use RECVAULT_VISIBILITY_TIMEOUT_SECONDS"
    assert error.startswith("recvault: configuration error: RECVAULT_VISIBILITY_TIMEOUT_SECONDS:")


# --- settings at start, through the installed `recvault` command --------------------------------

RECVAULT = Path(sys.executable).with_name("recvault")  # the console script the package installs


def installed(*args: str, cwd: Path | None = None, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(variables)
    return subprocess.run([str(RECVAULT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_a_misspelt_variable_is_one_warning_naming_the_setting_meant_and_the_command_goes_on(tmp_path) -> None:
    result = installed("policy", "explain", "RecordingSource=DialVerb", cwd=tmp_path,
                       RECVAULT_TWILIO_AUTH_TOKEN="a-real-token-value", RECVAULT_TEST_REDIS="redis://127.0.0.1:1")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "RECVAULT_TWILIO_AUTH_TOKEN is not a recvault setting and is ignored; "
        "did you mean RECVAULT_TWILIO_AUTH_TOKENS?"]
    assert "rule:               default" in result.stdout


def test_a_misspelt_key_in_the_env_file_is_one_warning_too(tmp_path) -> None:
    (tmp_path / ".env").write_text("RECVAULT_QUEUE=archive\nRECVAULT_S3_BUCKETS=archive\n")
    result = installed("policy", "explain", "RecordingSource=DialVerb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "RECVAULT_S3_BUCKETS (in .env) is not a recvault setting and is ignored; did you mean RECVAULT_S3_BUCKET?"]


@pytest.mark.parametrize("command", [["up", "--no-demo"], ["serve"], ["worker"], ["beat"], ["dlq", "list"]])
def test_an_unknown_log_level_stops_any_command_at_start_in_one_line(tmp_path, command: list[str]) -> None:
    result = installed(*command, cwd=tmp_path, RECVAULT_LOG_LEVEL="verbose", RECVAULT_DATA_DIR=str(tmp_path / "data"),
                       RECVAULT_TWILIO_AUTH_TOKENS="a-real-token-value")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "recvault: configuration error: RECVAULT_LOG_LEVEL: 'verbose' is not a log level; use one of DEBUG, INFO, "
        "WARNING, ERROR, CRITICAL"]
    assert result.stdout == ""  # nothing was started


def test_a_warning_and_an_error_together(tmp_path) -> None:
    result = installed("dlq", "list", cwd=tmp_path, RECVAULT_WORKER_CONCURENCY="4", RECVAULT_WORKER_POOL="gevent")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "RECVAULT_WORKER_CONCURENCY is not a recvault setting and is ignored; "
        "did you mean RECVAULT_WORKER_CONCURRENCY?",
        "recvault: configuration error: RECVAULT_WORKER_POOL: Input should be 'threads', 'prefork' or 'solo'"]
