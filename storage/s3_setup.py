"""Make a bucket what the archive needs: Object Lock, default retention, encryption, no public access, cleanup,
and a bucket policy that keeps create-only folders create-only (storage.bucket_policy).

Each step looks first and changes only what differs, so running it again changes nothing.
S3-compatible stores implement some of these and not others; a feature the store answers
`NotImplemented` (HTTP 501) for is reported as such rather than failing the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from recvault.storage import bucket_policy
from recvault.storage.s3_bucket import DEFAULT_REGION
from recvault.storage.s3_errors import error_code, http_status, s3_errors, translate

# What a store answers for an API it does not implement (SeaweedFS: the public access block).
NOT_IMPLEMENTED_CODES = frozenset({"NotImplemented"})
NOT_IMPLEMENTED_STATUS = 501
# A multipart upload neither completed nor aborted this many days after it began is removed:
# a backstop for a worker killed mid-upload whose upload no later delivery cleared.
ABORT_INCOMPLETE_DAYS = 7
LIFECYCLE_RULE_ID = "recvault-abort-incomplete-multipart-uploads"
# All four switches of S3's Block Public Access.
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                       "RestrictPublicBuckets": True}
# SSE algorithms at least as strong as the SSE-S3 default (AES256); one of them is kept as it is.
KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})

State = Literal["created", "changed", "unchanged", "would change", "not supported"]


@dataclass(frozen=True)
class BucketSetup:
    """What the bucket should be: default retention (mode, days) or None, the SSE-KMS key or None (AES256),
    the folders (keys with the deployment's prefix) only create-only writes may reach, and the
    principal ARNs (the workers' IAM role) denied every delete in them."""

    default_retention: tuple[str, int] | None
    kms_key_id: str | None = None
    create_only_folders: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SetupStep:
    """One feature of the bucket, what became of it, and in what state it is."""

    feature: str
    state: State
    detail: str

    def line(self) -> str:
        return f"{self.feature}: {self.state}" + (f" ({self.detail})" if self.detail else "")


class NotSupported(Exception):
    """The store does not implement this feature."""


@contextmanager
def _supported(action: str, *, ignore: frozenset[str] = frozenset()) -> Iterator[None]:
    """Like s3_errors (swallowing `ignore` codes), but a store's 501 becomes NotSupported."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        if code in ignore:
            return
        if code in NOT_IMPLEMENTED_CODES or http_status(error) == NOT_IMPLEMENTED_STATUS:
            raise NotSupported(action) from error
        raise translate(error, action) from error
    except BotoCoreError as error:
        raise translate(error, action) from error


def _get(action: str, call: Callable[[], dict], missing: str) -> dict | None:
    """A bucket configuration, or None when the store has none (`missing` is its error code)."""
    answer = None
    with _supported(action, ignore=frozenset({missing})):
        answer = call()
    return answer


class BucketInitializer:
    """Runs each step against one bucket; with `apply` false it only reports what it would change."""

    def __init__(self, client: Any, bucket: str, setup: BucketSetup, *, apply: bool) -> None:
        self.client = client
        self.bucket = bucket
        self.setup = setup
        self.apply = apply

    def run(self) -> list[SetupStep]:
        steps = [self.bucket_exists()]
        if steps[0].state == "would change":
            return steps  # nothing more can be looked at in a bucket that is not there
        features = (("object lock", self.object_lock), ("encryption", self.encryption),
                    ("public access block", self.public_access), ("lifecycle", self.lifecycle),
                    ("bucket policy", self.bucket_policy))
        for feature, step in features:
            try:
                steps.append(step())
            except NotSupported:
                steps.append(SetupStep(feature, "not supported", "the store does not implement it"))
        return steps

    def _changed(self, feature: str, detail: str, change: Callable[[], object]) -> SetupStep:
        if not self.apply:
            return SetupStep(feature, "would change", detail)
        change()
        return SetupStep(feature, "changed", detail)

    # --- the steps ---------------------------------------------------------------
    def bucket_exists(self) -> SetupStep:
        found = None
        with s3_errors(f"head bucket {self.bucket}", ignore=frozenset({"404", "NoSuchBucket"})):
            found = self.client.head_bucket(Bucket=self.bucket)
        if found is not None:
            return SetupStep("bucket", "unchanged", f"{self.bucket} exists")
        if not self.apply:
            return SetupStep("bucket", "would change", f"{self.bucket} would be created with Object Lock")
        params: dict[str, Any] = {"Bucket": self.bucket, "ObjectLockEnabledForBucket": True}
        region = self.client.meta.region_name
        if region != DEFAULT_REGION:
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with s3_errors(f"create bucket {self.bucket}", ignore=frozenset({"BucketAlreadyOwnedByYou"})):
            self.client.create_bucket(**params)
        return SetupStep("bucket", "created", f"{self.bucket}, with Object Lock")

    def object_lock(self) -> SetupStep:
        answer = _get(f"get Object Lock configuration of {self.bucket}",
                      lambda: self.client.get_object_lock_configuration(Bucket=self.bucket),
                      "ObjectLockConfigurationNotFoundError")
        config = (answer or {}).get("ObjectLockConfiguration", {})
        enabled = config.get("ObjectLockEnabled") == "Enabled"
        retention = config.get("Rule", {}).get("DefaultRetention", {})
        have = (retention["Mode"], int(retention["Days"])) if "Days" in retention else (
            (retention["Mode"], int(retention["Years"]) * 365) if "Years" in retention else None)
        wanted = self.setup.default_retention
        described = f"default retention {wanted[0]} {wanted[1]} days" if wanted else "no default retention"
        if enabled and have == wanted:
            return SetupStep("object lock", "unchanged", f"enabled, {described}")
        new: dict[str, Any] = {"ObjectLockEnabled": "Enabled"}
        if wanted:
            new["Rule"] = {"DefaultRetention": {"Mode": wanted[0], "Days": wanted[1]}}

        def change() -> None:
            if not enabled:
                # A bucket made without Object Lock can have it once versioning is on (S3 since 2023).
                with s3_errors(f"enable versioning of {self.bucket}"):
                    self.client.put_bucket_versioning(Bucket=self.bucket,
                                                      VersioningConfiguration={"Status": "Enabled"})
            with _supported(f"put Object Lock configuration of {self.bucket}"):
                self.client.put_object_lock_configuration(Bucket=self.bucket, ObjectLockConfiguration=new)

        detail = described if enabled else f"enabled on the existing bucket, {described}"
        return self._changed("object lock", detail, change)

    def encryption(self) -> SetupStep:
        answer = _get(f"get encryption of {self.bucket}",
                      lambda: self.client.get_bucket_encryption(Bucket=self.bucket),
                      "ServerSideEncryptionConfigurationNotFoundError")
        rules = (answer or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
        algorithm, key = default.get("SSEAlgorithm"), default.get("KMSMasterKeyID")
        wanted_key = self.setup.kms_key_id
        if wanted_key:
            ok = algorithm in KMS_ALGORITHMS and key == wanted_key
            wanted = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": wanted_key}
            detail = f"aws:kms with key {wanted_key}"
        else:
            ok = algorithm == "AES256" or algorithm in KMS_ALGORITHMS  # never weaken a KMS default
            wanted = {"SSEAlgorithm": "AES256"}
            detail = f"{algorithm}" + (f" with key {key}" if key else "") if ok else "AES256"
        if ok:
            return SetupStep("encryption", "unchanged", detail)

        def change() -> None:
            rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": wanted}
            if wanted_key:
                rule["BucketKeyEnabled"] = True  # fewer KMS requests, same protection
            with _supported(f"put encryption of {self.bucket}"):
                self.client.put_bucket_encryption(Bucket=self.bucket,
                                                  ServerSideEncryptionConfiguration={"Rules": [rule]})

        return self._changed("encryption", detail, change)

    def public_access(self) -> SetupStep:
        answer = _get(f"get public access block of {self.bucket}",
                      lambda: self.client.get_public_access_block(Bucket=self.bucket),
                      "NoSuchPublicAccessBlockConfiguration")
        config = (answer or {}).get("PublicAccessBlockConfiguration", {})
        if all(config.get(name) for name in PUBLIC_ACCESS_BLOCK):
            return SetupStep("public access block", "unchanged", "all public access blocked")

        def change() -> None:
            with _supported(f"put public access block of {self.bucket}"):
                self.client.put_public_access_block(Bucket=self.bucket,
                                                    PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)

        return self._changed("public access block", "all public access blocked", change)

    def lifecycle(self) -> SetupStep:
        answer = _get(f"get lifecycle of {self.bucket}",
                      lambda: self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket),
                      "NoSuchLifecycleConfiguration")
        rules = list((answer or {}).get("Rules", []))
        for rule in rules:
            days = rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")
            if days is not None and rule.get("Status") == "Enabled" and _whole_bucket(rule):
                return SetupStep("lifecycle", "unchanged",
                                 f"incomplete multipart uploads aborted after {days} days (rule {rule.get('ID')})")
        ours = {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_INCOMPLETE_DAYS}}

        def change() -> None:
            # The configuration is replaced whole: the bucket's other rules go back in with ours.
            with _supported(f"put lifecycle of {self.bucket}"):
                self.client.put_bucket_lifecycle_configuration(
                    Bucket=self.bucket, LifecycleConfiguration={"Rules": [*rules, ours]})

        detail = f"incomplete multipart uploads aborted after {ABORT_INCOMPLETE_DAYS} days"
        return self._changed("lifecycle", detail + (f", beside {len(rules)} other rule(s)" if rules else ""), change)

    def bucket_policy(self) -> SetupStep:
        wanted = bucket_policy.statements(self.bucket, self.client.meta.region_name, self.setup.create_only_folders,
                                          self.setup.workers)
        if not wanted:
            return SetupStep("bucket policy", "unchanged", "no create-only folders asked for")
        answer = _get(f"get bucket policy of {self.bucket}", lambda: self.client.get_bucket_policy(Bucket=self.bucket),
                      "NoSuchBucketPolicy")
        existing = json.loads(answer["Policy"]) if answer else None
        policy = bucket_policy.merged(existing, wanted)
        detail = _policy_detail(policy, self.setup.create_only_folders)
        if bucket_policy.same(existing, policy):
            return SetupStep("bucket policy", "unchanged", detail)

        def change() -> None:
            # The policy is replaced whole: the operator's statements go back in beside ours.
            with _supported(f"put bucket policy of {self.bucket}"):
                self.client.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(policy))

        return self._changed("bucket policy", detail, change)


def _policy_detail(policy: dict[str, Any], folders: tuple[str, ...]) -> str:
    """What the policy makes of recvault's folders, in a line."""
    said = f"writes to {', '.join(folders)} only with If-None-Match"
    deny = next((s for s in policy["Statement"] if s.get("Sid") == bucket_policy.NO_DELETE_SID), None)
    if deny is None:
        return said + "; no worker role named, so deletes are left to IAM"
    principal = deny.get("Principal")
    workers = principal.get("AWS", []) if isinstance(principal, dict) else principal
    return f"{said}; no deletes there by {', '.join(workers if isinstance(workers, list) else [str(workers)])}"


def _whole_bucket(rule: dict[str, Any]) -> bool:
    """Whether a lifecycle rule applies to every key (no prefix, tag or size filter)."""
    if rule.get("Prefix"):
        return False
    rule_filter = rule.get("Filter")
    return not rule_filter or rule_filter == {"Prefix": ""}


def init_bucket(client: Any, bucket: str, setup: BucketSetup, *, apply: bool = True) -> list[SetupStep]:
    """Create or check `bucket` step by step; each step says what it changed (or would)."""
    return BucketInitializer(client, bucket, setup, apply=apply).run()
