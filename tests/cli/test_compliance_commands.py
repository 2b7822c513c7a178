"""`recvault hold`, `erase`, `lifecycle` and `purge` as an operator runs them: answers, exit codes, records."""

from __future__ import annotations

import argparse
import functools
import json
import os
import pwd
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from recvault.cli import build_parser, main
from recvault.commands.options import actor_of
from recvault.storage.base import Retention
from recvault.storage.s3 import S3Store
from tests.compliance.seed import seed
from tests.fixtures.services import unique_bucket


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> S3Store:
    """One Object Lock bucket for the module; each test works under a prefix of its own."""
    store = S3Store(unique_bucket("compliance-commands"), endpoint_url=s3_endpoint)
    store.ensure_bucket(create=True)
    return store


@pytest.fixture
def env(bucket, s3_endpoint, tmp_path, monkeypatch):
    prefix = f"t-{uuid.uuid4().hex[:12]}/"
    for name, value in {"RECVAULT_S3_BUCKET": bucket.bucket, "RECVAULT_S3_ENDPOINT_URL": s3_endpoint,
                        "RECVAULT_S3_PREFIX": prefix, "RECVAULT_DATA_DIR": str(tmp_path),
                        "RECVAULT_LOG_LEVEL": "WARNING"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return functools.partial(seed, bucket, prefix=prefix)


@pytest.mark.system  # four commands in a row: about 2 s
def test_hold_set_list_and_release_from_the_command_line(env, capsys) -> None:
    seeded = env(labels={"tenant": "acme"})
    assert main(["hold", "set", "--label", "tenant=acme", "--reason", "SEC inquiry 12", "--id", "sec-12",
                 "--actor", "dana"]) == 0
    assert f"held {seeded.sid}" in capsys.readouterr().out
    assert main(["hold", "list", "--json"]) == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (listed["hold_id"], listed["actor"], listed["reason"], listed["recordings"]) == (
        "sec-12", "dana", "SEC inquiry 12", [seeded.sid])
    assert main(["hold", "release", "sec-12", "--reason", "closed"]) == 0
    assert f"released {seeded.sid}" in capsys.readouterr().out
    assert main(["hold", "list"]) == 0 and capsys.readouterr().out == "no active holds\n"
    assert main(["hold", "list", "--json"]) == 0 and capsys.readouterr().out == ""  # JSON lines: none is no line
    assert main(["hold", "list", "--all"]) == 0 and "sec-12" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "expected"), [
    (["hold", "set", "--reason", "x"], "name the recordings"),
    (["hold", "set", "--call", "CA12", "--reason", "x"], "--call 'CA12' is not a CA… SID"),
    (["hold", "release", "nope", "--reason", "x"], "no hold 'nope'"),
])
def test_bad_hold_requests_are_refused_with_the_reason_and_exit_2(env, capsys, argv, expected) -> None:
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_hold_set_and_erase_require_a_reason(env, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["hold", "set", "RE" + "0" * 32])
    assert exited.value.code == 2 and "--reason" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["hold", "set", "RE" + "0" * 32, "--reason", "r", "--id", "../x"])
    assert exited.value.code == 2 and "a hold id is" in capsys.readouterr().err
    assert main(["erase", "RE" + "0" * 32]) == 2
    assert "--reason is required" in capsys.readouterr().err
    assert main(["erase"]) == 2 and "--run-due" in capsys.readouterr().err


def test_erase_of_a_retained_recording_exits_1_naming_the_lock_and_the_date(env, capsys) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    seeded = env(lock=Retention("GOVERNANCE", until))
    assert main(["erase", seeded.sid, "--reason", "DSAR 5", "--requested-by", "subject", "--date", seeded.date]) == 1
    err = capsys.readouterr().err
    assert f"refused {seeded.sid}: retention: locked until {until.isoformat()}" in err
    assert f"Possible {until.isoformat()}; --when-allowed queues it to run then" in err


def test_erase_when_allowed_that_queues_the_request_exits_0_saying_when_it_runs(env, capsys) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    seeded = env(lock=Retention("GOVERNANCE", until))
    assert main(["erase", seeded.sid, "--reason", "DSAR 5", "--requested-by", "subject", "--when-allowed",
                 "--date", seeded.date]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"queued {seeded.sid}: not erasable now (retention: locked until {until.isoformat()}")
    assert out.endswith(f"); erased by the scheduled task from {until.isoformat()}\n")
    assert err == ""
    assert main(["erase", "--run-due"]) == 0  # not due yet: still queued, and said so
    assert capsys.readouterr().out == f"queued {seeded.sid} (possible {until.isoformat()})\n"


def test_empty_listings_say_there_is_nothing(env, capsys) -> None:
    assert main(["erase", "--run-due"]) == 0 and capsys.readouterr().out == "no queued erasures\n"
    assert main(["purge", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out == "no recordings due for purge\n" and "(dry run)" in err
    assert main(["hold", "list", "--all"]) == 0 and capsys.readouterr().out == "no holds\n"


def test_lifecycle_writes_the_json_for_deploy_and_purge_dry_run_deletes_nothing(env, bucket, tmp_path, capsys) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[default]\nretention_days = 30\nmode = "GOVERNANCE"\n')
    out = tmp_path / "lifecycle.json"
    assert main(["lifecycle", "--policy", str(policy), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["Rules"][0]["Expiration"] == {"Days": 30}
    seeded = env(recorded_until=datetime.now(UTC) - timedelta(days=1))
    assert main(["purge", "--dry-run"]) == 0
    assert f"due {seeded.sid}" in capsys.readouterr().out
    assert bucket.head(seeded.media_key) is not None


def test_a_command_acts_as_the_actor_given_else_as_the_local_account() -> None:
    assert actor_of(build_parser().parse_args(["hold", "release", "h", "--reason", "r", "--actor", "dana"])) == "dana"
    local = pwd.getpwuid(os.getuid()).pw_name  # the password database's name, not $USER
    assert actor_of(build_parser().parse_args(["purge"])) == actor_of(argparse.Namespace(actor="")) == local
