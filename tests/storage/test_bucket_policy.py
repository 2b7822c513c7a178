"""The bucket policy `recvault init-bucket` sets: create-only folders stay create-only, the workers never delete there.

AWS enforces both statements. SeaweedFS (with identities) enforces the workers' delete deny, but
exposes neither `s3:if-none-match` nor `s3:ObjectCreationOperation` to a policy, so the create-only
deny never matches there; the test below says so, and another checks every write recvault makes
against that statement as AWS evaluates it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import botocore.session
import pytest
import redis
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from recvault import layout
from recvault.audit.chain import DAY_SECONDS
from recvault.audit.ledger import ledger_row
from recvault.audit.ledger_flush import flush
from recvault.audit.seal import seal_through
from recvault.audit.write import write_system_audit
from recvault.cli import main
from recvault.compliance import erasure
from recvault.compliance.hold_selector import Selector
from recvault.compliance.holds import release_hold, set_hold
from recvault.compliance.policy import Policy
from recvault.launch.services import SeaweedFS
from recvault.storage.base import Retention
from recvault.storage.bucket_policy import (
    CREATE_ONLY_CONDITION,
    CREATE_ONLY_SID,
    NO_DELETE_SID,
    VERSION,
    arn_partition,
    merged,
    same,
    statements,
)
from recvault.storage.multipart import MIN_PART_SIZE
from recvault.storage.s3 import LOCAL_ACCESS_KEY, S3Store
from recvault.workers.archive import ArchiveOptions
from recvault.workers.dead_letters import DeadLetters
from tests.fixtures.archive import ArchiveEnv
from tests.fixtures.services import start_or_fail, unique_bucket
from tests.fixtures.worker import wait_for

ROOT = Path(__file__).resolve().parents[2]
WORKER_ROLE = "arn:aws:iam::111122223333:role/recvault-worker"
# The operations S3 counts as creating an object (`s3:ObjectCreationOperation` true); the rest of
# a multipart upload (CreateMultipartUpload, UploadPart) is false, and so exempt.
CREATING = frozenset({"PutObject", "CompleteMultipartUpload", "CopyObject"})


# --- the document -------------------------------------------------------------------------------

def test_the_create_only_statement_is_awss_pattern_for_enforcing_conditional_writes() -> None:
    folders = tuple(f"acme/{folder}" for folder in layout.CREATE_ONLY_FOLDERS)
    [create_only, no_delete] = statements("archive", "eu-west-1", folders, [WORKER_ROLE])
    assert create_only == {
        "Sid": CREATE_ONLY_SID, "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
        "Resource": [f"arn:aws:s3:::archive/acme/{folder}*" for folder in layout.CREATE_ONLY_FOLDERS],
        "Condition": {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}}}
    assert no_delete == {"Sid": NO_DELETE_SID, "Effect": "Deny", "Principal": {"AWS": [WORKER_ROLE]},
                         "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": create_only["Resource"]}
    assert [s["Sid"] for s in statements("archive", "eu-west-1", folders, [])] == [CREATE_ONLY_SID]
    assert statements("archive", "eu-west-1", (), [WORKER_ROLE]) == []


def test_metadata_is_not_a_create_only_folder_because_a_price_update_rewrites_it() -> None:
    assert layout.METADATA not in layout.CREATE_ONLY_FOLDERS
    assert {layout.MEDIA, layout.EVENTS, layout.AUDIT, layout.DEAD_LETTERS} <= set(layout.CREATE_ONLY_FOLDERS)


def test_the_arn_partition_follows_the_region() -> None:
    assert [arn_partition(r) for r in ("us-east-1", "cn-north-1", "us-gov-west-1")] == ["aws", "aws-cn", "aws-us-gov"]
    [statement] = statements("archive", "cn-north-1", ("media/",), [])
    assert statement["Resource"] == ["arn:aws-cn:s3:::archive/media/*"]


def test_a_merge_keeps_the_operators_statements_and_a_delete_deny_set_before() -> None:
    theirs = {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
              "Resource": "arn:aws:s3:::archive/*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    earlier = merged({"Version": VERSION, "Statement": [theirs]},
                     statements("archive", "us-east-1", ("old/media/",), [WORKER_ROLE]))
    now = merged(earlier, statements("archive", "us-east-1", ("media/",), []))  # no role named this time
    by_sid = {s["Sid"]: s for s in now["Statement"]}
    assert set(by_sid) == {"DenyInsecureTransport", CREATE_ONLY_SID, NO_DELETE_SID}
    assert by_sid["DenyInsecureTransport"] == theirs
    assert by_sid[CREATE_ONLY_SID]["Resource"] == ["arn:aws:s3:::archive/media/*"]  # ours replaced
    assert by_sid[NO_DELETE_SID]["Principal"] == {"AWS": [WORKER_ROLE]}  # never lifted by omission


def test_a_policy_given_back_in_another_layout_is_the_same_policy() -> None:
    ours = {"Version": VERSION, "Statement": statements("archive", "us-east-1", ("media/",), [WORKER_ROLE])}
    # What SeaweedFS answers: a one-item list as a plain string, the condition's keys in another order.
    resource = "arn:aws:s3:::archive/media/*"
    given_back = json.loads(json.dumps(ours).replace(f'["{resource}"]', f'"{resource}"')
                            .replace(f'["{WORKER_ROLE}"]', f'"{WORKER_ROLE}"'))
    given_back["Statement"][0]["Condition"] = dict(reversed(list(CREATE_ONLY_CONDITION.items())))
    assert given_back != ours and same(given_back, ours)
    weaker = json.loads(json.dumps(ours))
    del weaker["Statement"][0]["Condition"]["Bool"]
    assert not same(weaker, ours)


def test_the_deploy_example_is_what_init_bucket_writes_for_the_example_bucket() -> None:
    accounts = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "service-accounts.yaml").read_text()))
    [worker_role] = [a["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] for a in accounts
                     if a["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"]
    example = json.loads((ROOT / "deploy" / "aws" / "bucket-policy.json").read_text())
    assert example == {"Version": VERSION,
                       "Statement": statements("my-recordings", "us-east-1", layout.CREATE_ONLY_FOLDERS, [worker_role])}


def test_a_worker_role_that_is_not_an_arn_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["init-bucket", "--worker-role-arn", "recvault-worker"])
    assert stopped.value.code == 2 and "is not an IAM role or user ARN" in capsys.readouterr().err


# --- every write recvault makes, against the create-only statement ------------------------------

@dataclass(frozen=True)
class Write:
    operation: str
    key: str
    if_none_match: bool


def recorded_writes(store: S3Store) -> list[Write]:
    """Each write request the store signs from now on: operation, key, whether it carries If-None-Match."""
    writes: list[Write] = []

    def before_sign(request: Any, operation_name: str, **_: Any) -> None:
        if operation_name in CREATING | {"CreateMultipartUpload", "UploadPart"}:
            key = unquote(urlsplit(request.url).path).split("/", 2)[2]  # path style: /bucket/key
            writes.append(Write(operation_name, key, "If-None-Match" in request.headers))

    store._client.meta.events.register("before-sign.s3", before_sign)
    return writes


def denied_by(statement: dict[str, Any], bucket: str, write: Write) -> bool:
    """The create-only statement as AWS evaluates it for one write (the two condition keys it names)."""
    arn = f"arn:aws:s3:::{bucket}/{write.key}"
    return (write.operation in CREATING and not write.if_none_match
            and any(fnmatchcase(arn, resource) for resource in statement["Resource"]))


def test_every_write_recvault_makes_in_a_create_only_folder_would_pass_awss_deny(
        archive_env: ArchiveEnv, sim, sim_account, redis_url) -> None:
    prefix, store = "acme/", archive_env.store
    archive_env.options = ArchiveOptions(prefix=prefix)
    archive_env.policy = Policy.from_dict({"default": {"retention_days": 1, "mode": "none"}})
    writes = recorded_writes(store)
    now = datetime.now(UTC)

    small = sim.create_recording(duration=2, price_delay=0.5)  # priced after it is archived
    result = archive_env.archive(small)
    archive_env.archive(sim.create_recording(duration=400))  # over one 5 MiB part: multipart
    absent = sim.create_recording(status="absent", error_code=16102)
    archive_env.archive(absent, "absent")
    wait_for(lambda: archive_env.refresh(small, result), timeout=10, what="the price")  # rewrites the document
    hold, _ = set_hold(store, prefix, Selector(recording_sids=(small.sid,)), reason="case 7", actor="legal", now=now)
    assert erasure.erase(store, prefix, small.sid, reason="asked", requested_by="them", actor="ops", now=now,
                         when_allowed=True).status == "queued"
    release_hold(store, prefix, hold.hold_id, reason="closed", actor="legal", now=now)
    assert [outcome.status for outcome in erasure.run_due(store, prefix, datetime.now(UTC))] == ["erased"]
    client = redis.Redis.from_url(redis_url)
    DeadLetters(client, store, prefix=prefix).add(f"{absent.sid}:absent", "archive", {}, reason="r", error="e",
                                                  attempts=5)
    stream = f"accepted-{uuid.uuid4().hex}"
    client.xadd(stream, {"r": ledger_row(small.sid, "completed", sim_account.sid, now.isoformat())})
    client.xadd(stream, {"x": "not a row"})
    flush(client, stream, store, prefix, Retention())
    write_system_audit(store, prefix, "policy-loaded", {"version": "1"}, now)
    assert seal_through(store, prefix, now, keep_days=1, now=now, period_seconds=DAY_SECONDS)

    folders = tuple(prefix + folder for folder in layout.CREATE_ONLY_FOLDERS)
    [create_only] = statements(store.bucket, "us-east-1", folders, [])
    assert [w for w in writes if denied_by(create_only, store.bucket, w)] == []
    # What was looked at: each create-only folder's writer, the multipart upload, and the one rewrite.
    put = {w.key.removeprefix(prefix).split("/")[0] + ("/" + w.key.split("/")[2] if "/audit/" in w.key else "")
           for w in writes if w.operation == "PutObject"}
    assert {"media", "events", "metadata", "holds", "erasures", "tombstones", "dead-letters", "audit/chains",
            "audit/index", "audit/seals", "audit/accepted", "audit/ledger-rejected"} <= put, put
    assert any(w.operation == "CompleteMultipartUpload" and w.if_none_match for w in writes)
    assert any(w.operation == "UploadPart" and not w.if_none_match for w in writes)  # exempt, as S3 requires
    # A price update rewrites the metadata document: the one write without If-None-Match, outside the folders.
    assert any(w.key.startswith(f"{prefix}metadata/") and not w.if_none_match for w in writes)


# --- SeaweedFS with identities: what it enforces -------------------------------------------------

@dataclass(frozen=True)
class Identities:
    weed: SeaweedFS
    bucket: str

    def client(self, name: str) -> Any:
        keys = {"admin": LOCAL_ACCESS_KEY, "worker": ("WORKERKEY", "worker-secret"),
                "compliance": ("COMPLIANCEKEY", "compliance-secret")}[name]
        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.weed.s3_url, region_name="us-east-1", aws_access_key_id=keys[0],
            aws_secret_access_key=keys[1], config=Config(s3={"addressing_style": "path"}))


# SeaweedFS names an identity `arn:aws:iam::000000000000:user/<name>` in a policy's Principal.
SEAWEED_WORKER = "arn:aws:iam::000000000000:user/recvault-worker"


@pytest.fixture
def identities(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Identities]:
    """SeaweedFS with three identities: the bucket's admin (recvault's local key, which init-bucket
    uses), the workers and the compliance commands (read, write, list, tag; no Admin)."""
    access, secret = LOCAL_ACCESS_KEY
    rights = ["Read", "Write", "List", "Tagging"]
    config = tmp_path / "identities.json"
    config.write_text(json.dumps({"identities": [
        {"name": "bucket-admin", "credentials": [{"accessKey": access, "secretKey": secret}],
         "actions": ["Admin", *rights]},
        {"name": "recvault-worker", "credentials": [{"accessKey": "WORKERKEY", "secretKey": "worker-secret"}],
         "actions": rights},
        {"name": "recvault-compliance", "actions": rights,
         "credentials": [{"accessKey": "COMPLIANCEKEY", "secretKey": "compliance-secret"}]}]}))
    weed = SeaweedFS(tmp_path / "weed", s3_config=config)
    start_or_fail(weed)
    bucket = unique_bucket("policy")
    policy = tmp_path / "policy.toml"
    policy.write_text('[default]\nretention_days = 1\nmode = "none"\n')  # no lock: a refused delete is the policy's
    for variable, value in {"RECVAULT_S3_BUCKET": bucket, "RECVAULT_S3_ENDPOINT_URL": weed.s3_url,
                            "RECVAULT_POLICY_FILE": str(policy)}.items():
        monkeypatch.setenv(variable, value)
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    yield Identities(weed, bucket)
    weed.stop()


def init_bucket(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["init-bucket", *args])
    out = capsys.readouterr().out
    return code, next(line for line in out.splitlines() if line.startswith("bucket policy: "))


def test_init_bucket_sets_the_policy_once_and_keeps_it(identities: Identities, capsys) -> None:
    code, line = init_bucket(capsys, "--worker-role-arn", SEAWEED_WORKER)
    assert code == 0
    assert line == ("bucket policy: changed (writes to media/, events/, audit/, tombstones/, holds/, erasures/, "
                    f"dead-letters/ only with If-None-Match; no deletes there by {SEAWEED_WORKER})")
    admin = identities.client("admin")
    stored = json.loads(admin.get_bucket_policy(Bucket=identities.bucket)["Policy"])
    wanted = statements(identities.bucket, "us-east-1", layout.CREATE_ONLY_FOLDERS, [SEAWEED_WORKER])
    assert same(stored, {"Version": VERSION, "Statement": wanted})

    assert init_bucket(capsys, "--worker-role-arn", SEAWEED_WORKER)[1].startswith("bucket policy: unchanged (")
    code, line = init_bucket(capsys, "--check")  # no role named: the deny set before stays
    assert code == 0 and line.endswith(f"no deletes there by {SEAWEED_WORKER})")
    assert line.startswith("bucket policy: unchanged (")


def test_seaweedfs_denies_the_worker_deletes_in_create_only_folders_and_no_one_else(
        identities: Identities, capsys) -> None:
    assert init_bucket(capsys, "--worker-role-arn", SEAWEED_WORKER)[0] == 0
    worker, compliance, bucket = identities.client("worker"), identities.client("compliance"), identities.bucket
    keys = {folder: worker.put_object(Bucket=bucket, Key=f"{folder}x.json", Body=b"{}", IfNoneMatch="*")["VersionId"]
            for folder in ("media/", "audit/chains/RE1/", "dead-letters/", "metadata/")}

    for folder in ("media/", "audit/chains/RE1/", "dead-letters/"):
        for call in ({}, {"VersionId": keys[folder]}):  # a delete marker, and the version itself
            with pytest.raises(ClientError) as refused:
                worker.delete_object(Bucket=bucket, Key=f"{folder}x.json", **call)
            assert refused.value.response["Error"]["Code"] == "AccessDenied"
    worker.delete_object(Bucket=bucket, Key="metadata/x.json", VersionId=keys["metadata/"])  # not a create-only folder
    compliance.delete_object(Bucket=bucket, Key="media/x.json", VersionId=keys["media/"])  # erasure's role may
    versions = worker.list_object_versions(Bucket=bucket).get("Versions", [])
    assert sorted(v["Key"] for v in versions) == ["audit/chains/RE1/x.json", "dead-letters/x.json"]


def test_recvaults_own_writes_pass_the_policy_on_seaweedfs(identities: Identities, capsys, monkeypatch) -> None:
    assert init_bucket(capsys, "--worker-role-arn", SEAWEED_WORKER)[0] == 0
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "WORKERKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "worker-secret")
    store = S3Store(identities.bucket, endpoint_url=identities.weed.s3_url, part_size=MIN_PART_SIZE)
    entry = store.put_bytes("audit/chains/RE1/000001.json", b"{}\n", content_type="application/json")
    media = bytes(range(256)) * (6 * MIN_PART_SIZE // 5 // 256)  # over one part: storage.multipart's path
    stored = store.put_stream("media/date=2026-01-01/AC1/RE1.wav", iter([media]), content_type="audio/x-wav")
    assert (entry.size, stored.size) == (3, len(media))
    assert store.get_bytes("media/date=2026-01-01/AC1/RE1.wav") == media


def test_seaweedfs_does_not_enforce_the_create_only_statement(identities: Identities, capsys) -> None:
    """The gap, as it stands: SeaweedFS puts no `s3:if-none-match` or `s3:ObjectCreationOperation` in a
    policy's context. Our statement (both keys) then never matches, so a plain PUT over a create-only
    key stacks a new version there (AWS refuses it); a deny on the header alone refuses every PUT,
    conditional ones too, which is why init-bucket does not write that weaker form."""
    assert init_bucket(capsys, "--worker-role-arn", SEAWEED_WORKER)[0] == 0
    worker, bucket = identities.client("worker"), identities.bucket
    worker.put_object(Bucket=bucket, Key="media/x.wav", Body=b"archived", IfNoneMatch="*")
    worker.put_object(Bucket=bucket, Key="media/x.wav", Body=b"stand-in")  # AWS: 403
    assert len(worker.list_object_versions(Bucket=bucket, Prefix="media/x.wav")["Versions"]) == 2

    header_only = statements(bucket, "us-east-1", ("media/",), [])
    del header_only[0]["Condition"]["Bool"]
    identities.client("admin").put_bucket_policy(Bucket=bucket, Policy=json.dumps(
        {"Version": VERSION, "Statement": header_only}))
    with pytest.raises(ClientError) as refused:
        worker.put_object(Bucket=bucket, Key="media/y.wav", Body=b"new", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
