"""`recvault init-bucket` on a real SeaweedFS: creates what is missing, says so, and changes nothing the second time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config

from recvault.cli import main
from recvault.commands.init_bucket import bucket_setup
from recvault.compliance.policy import Policy
from recvault.launch.services import free_port
from recvault.settings import load_settings
from recvault.storage.s3 import S3Store
from recvault.storage.s3_setup import LIFECYCLE_RULE_ID
from tests.fixtures.services import unique_bucket
from tests.fixtures.worker import wait_for

POLICY = """
[default]
retention_days = 30
mode = "GOVERNANCE"

[[rule]]
name = "scratch"
source = ["RecordVerb"]
mode = "none"
"""


@pytest.fixture
def s3(s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="k",
                          aws_secret_access_key="s", config=Config(s3={"addressing_style": "path"}))
    yield client
    client.close()


@pytest.fixture
def bucket(request, s3_endpoint, tmp_path, monkeypatch) -> str:
    """A bucket name nobody has created yet, and settings naming it (policy: GOVERNANCE 30 days)."""
    name = unique_bucket(request.node.name)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    for variable, value in {"RECVAULT_S3_BUCKET": name, "RECVAULT_S3_ENDPOINT_URL": s3_endpoint,
                            "RECVAULT_POLICY_FILE": str(policy)}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return name


def init_bucket(capsys, *args: str) -> tuple[int, dict[str, str], str]:
    """Run the command; its exit status, `feature: state (detail)` lines by feature, and stderr."""
    code = main(["init-bucket", *args])
    out, err = capsys.readouterr()
    lines = dict(line.split(": ", 1) for line in out.splitlines() if not line.startswith("note: "))
    return code, lines, err


def test_creates_the_bucket_then_a_second_run_changes_nothing(bucket, s3, capsys) -> None:
    code, first, err = init_bucket(capsys)
    assert code == 0, err
    assert first["bucket"] == f"created ({bucket}, with Object Lock)"
    assert first["object lock"] == "changed (default retention GOVERNANCE 30 days)"
    assert first["encryption"] == "changed (AES256)"
    assert first["public access block"] == "not supported (the store does not implement it)"  # SeaweedFS: 501
    assert first["lifecycle"] == "changed (incomplete multipart uploads aborted after 7 days)"
    assert first["bucket policy"].startswith("changed (writes to media/, events/, audit/")
    assert "5 setting(s) changed" in err

    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock == {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}}}
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [(r["ID"], r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]) for r in rules] == [
        (LIFECYCLE_RULE_ID, 7)]

    code, second, err = init_bucket(capsys)
    assert code == 0 and "0 setting(s) changed" in err
    assert {feature: line.split(" ", 1)[0] for feature, line in second.items()} == {
        "bucket": "unchanged", "object lock": "unchanged", "encryption": "unchanged",
        "public access block": "not", "lifecycle": "unchanged", "bucket policy": "unchanged"}
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 1  # not added twice
    code, _, err = init_bucket(capsys, "--check")
    assert code == 0 and "0 setting(s) would change" in err


def test_an_existing_bucket_gets_object_lock_and_keeps_its_own_lifecycle_rules(bucket, s3, capsys) -> None:
    s3.create_bucket(Bucket=bucket)  # an operator's bucket, made without Object Lock
    theirs = {"ID": "tmp-expiry", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 3}}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [theirs]})

    code, planned, err = init_bucket(capsys, "--check")
    assert code == 1 and "4 setting(s) would change" in err
    assert planned["object lock"] == ("would change (enabled on the existing bucket, "
                                      "default retention GOVERNANCE 30 days)")
    assert "ObjectLockConfiguration" not in _lock_or_empty(s3, bucket)  # --check changed nothing

    code, done, out = init_bucket(capsys)
    assert code == 0 and done["bucket"] == f"unchanged ({bucket} exists)"
    assert done["lifecycle"] == "changed (incomplete multipart uploads aborted after 7 days, beside 1 other rule(s))"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert _lock_or_empty(s3, bucket)["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert set(rules) == {"tmp-expiry", LIFECYCLE_RULE_ID} and rules["tmp-expiry"]["Expiration"] == {"Days": 3}


def test_the_policy_default_rule_decides_the_default_retention(bucket, s3, capsys, tmp_path) -> None:
    assert init_bucket(capsys)[0] == 0
    (tmp_path / "policy.toml").write_text('[default]\nretention_days = 2555\nmode = "COMPLIANCE"\n')
    code, lines, _ = init_bucket(capsys)
    assert code == 0 and lines["object lock"] == "changed (default retention COMPLIANCE 2555 days)"
    rule = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"]
    assert rule == {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 2555}}


def test_a_rule_that_locks_nothing_is_pointed_out(bucket, capsys) -> None:
    main(["init-bucket"])
    out = capsys.readouterr().out
    assert "note: policy rule(s) 'scratch' lock nothing themselves" in out


def _lock_or_empty(s3, bucket: str) -> dict:
    try:
        return s3.get_object_lock_configuration(Bucket=bucket)
    except s3.exceptions.ClientError:
        return {}


def test_a_kms_key_setting_makes_sse_kms_the_default_encryption(bucket, s3, capsys, monkeypatch) -> None:
    assert init_bucket(capsys)[1]["encryption"] == "changed (AES256)"
    monkeypatch.setenv("RECVAULT_S3_KMS_KEY_ID", "alias/recvault-archive")
    code, lines, _ = init_bucket(capsys)
    assert code == 0 and lines["encryption"] == "changed (aws:kms with key alias/recvault-archive)"
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                         "KMSMasterKeyID": "alias/recvault-archive"}
    assert init_bucket(capsys)[1]["encryption"] == "unchanged (aws:kms with key alias/recvault-archive)"
    monkeypatch.delenv("RECVAULT_S3_KMS_KEY_ID")
    assert init_bucket(capsys)[1]["encryption"].startswith("unchanged (aws:kms")  # never weakened to AES256


def test_a_bucket_made_as_recvault_up_makes_it_needs_no_change(bucket, s3, capsys) -> None:
    # `recvault up` creates its embedded bucket with Object Lock, then sets it up as init-bucket would.
    settings = load_settings()
    store = S3Store.from_settings(settings)
    store.ensure_bucket(create=True)
    code, planned, err = init_bucket(capsys, "--check")
    assert code == 1 and "4 setting(s) would change" in err
    store.init_bucket(bucket_setup(settings, Policy.from_settings(settings)))
    code, lines, err = init_bucket(capsys, "--check")
    assert code == 0 and "0 setting(s) would change" in err
    assert lines["object lock"] == "unchanged (enabled, default retention GOVERNANCE 30 days)"
    assert lines["encryption"] == "unchanged (AES256)"
    assert lines["lifecycle"].startswith("unchanged (incomplete multipart uploads aborted after 7 days")
    assert lines["bucket policy"].startswith("unchanged (writes to media/")


@pytest.mark.system  # `recvault up`: Redis, SeaweedFS, ingest, a worker, beat and the simulator
def test_init_bucket_check_finds_nothing_to_change_on_the_bucket_recvault_up_made(tmp_path) -> None:
    ports = {name: free_port() for name in ("ingest", "s3", "simulator", "redis", "metrics")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_DATA_DIR=str(tmp_path / "data"), RECVAULT_BROKER_URL=f"redis://127.0.0.1:{ports['redis']}/0",
               RECVAULT_WORKER_METRICS_PORT=str(ports["metrics"]), RECVAULT_LOG_LEVEL="WARNING")
    output = tmp_path / "up.log"
    with output.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "recvault.cli", "up", "--no-demo", "--port", str(ports["ingest"]),
             "--s3-port", str(ports["s3"]), "--sim-port", str(ports["simulator"])],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "recvault is up" in output.read_text() or up.poll() is not None, timeout=120,
                 what="recvault up to start")
        assert up.poll() is None, output.read_text()[-3000:]
        check = subprocess.run([sys.executable, "-m", "recvault.cli", "init-bucket", "--check"], cwd=tmp_path,
                               env={**env, "RECVAULT_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}"},
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "0 setting(s) would change" in check.stderr
        assert "would change" not in check.stdout
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
