"""deploy/aws files of the compliance commands: the lifecycle example and the IAM policy they run under."""

from __future__ import annotations

import json
import tomllib

import yaml

from recvault.compliance.lifecycle import lifecycle_rules
from recvault.compliance.policy import Policy
from tests.deploy.test_manifests import DEPLOY, KUBERNETES, S3_ACTIONS, _operations

# What the compliance controls call beyond the archive's own calls, and the IAM action each needs.
CONTROL_ACTIONS = {
    "put_object_legal_hold": {"s3:PutObjectLegalHold"},
    "get_object_legal_hold": {"s3:GetObjectLegalHold"},
    "list_object_versions": {"s3:ListBucketVersions"},
    # Always with a VersionId: a permanent delete, which Object Lock refuses while locked.
    "delete_object": {"s3:DeleteObjectVersion"},
}
# The calls of the archive's store the commands use too: find the bucket, read, list, write records.
SHARED_CALLS = {"head_bucket", "get_object_lock_configuration", "list_objects_v2", "get_object", "head_object",
                "put_object"}


def test_the_committed_lifecycle_example_is_what_the_example_policy_gives() -> None:
    config = next(doc for doc in yaml.safe_load_all((KUBERNETES / "config.yaml").read_text())
                  if doc and doc["metadata"]["name"] == "recvault-policy")
    policy = Policy.from_dict(tomllib.loads(config["data"]["policy.toml"]))
    committed = json.loads((DEPLOY / "aws" / "lifecycle.json").read_text())
    assert committed == {"Rules": lifecycle_rules(policy)}


def test_the_compliance_iam_policy_allows_exactly_what_the_commands_call() -> None:
    calls = _operations("s3_controls.py") | SHARED_CALLS
    actions = {**S3_ACTIONS, **CONTROL_ACTIONS}
    for call in calls:
        assert call in actions, f"{call}: which IAM action does it need?"
    policy = json.loads((DEPLOY / "aws" / "iam-policy-compliance.json").read_text())
    allowed = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert allowed == set().union(*(actions[call] for call in calls))
    assert not any("Bypass" in action or action == "s3:DeleteObject" for action in allowed)
