"""deploy/oauth2-proxy: the ingest StatefulSet patched with it is a valid StatefulSet that serves the
operations routes only to the proxy beside them, and the Compose override wires the same settings."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from recvault.settings import Settings
from tests.ops.conftest import API_TOKEN

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROXY = DEPLOY / "oauth2-proxy"


def _merge_by_name(base: list[dict[str, Any]], patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A strategic merge of a list keyed by name (containers, env), as `kubectl patch` does it."""
    merged = {item["name"]: copy.deepcopy(item) for item in base}
    for item in patch:
        if item["name"] not in merged:
            merged[item["name"]] = copy.deepcopy(item)
            continue
        target = merged[item["name"]]
        for key, value in item.items():
            target[key] = _merge_by_name(target.get(key, []), value) if key == "env" else value
    return list(merged.values())


def _patched_statefulset() -> dict[str, Any]:
    [statefulset] = [doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "ingest.yaml").read_text())
                     if doc and doc["kind"] == "StatefulSet"]
    patch = yaml.safe_load((PROXY / "ingest-patch.yaml").read_text())
    assert set(patch) == {"spec"} and set(patch["spec"]) == {"template"} and set(patch["spec"]["template"]) == {"spec"}
    pod = statefulset["spec"]["template"]["spec"]
    pod["containers"] = _merge_by_name(pod["containers"], patch["spec"]["template"]["spec"]["containers"])
    return statefulset


def test_the_patched_statefulset_is_valid_and_serves_the_operator_routes_only_to_the_proxy_beside_them() -> None:
    statefulset = _patched_statefulset()
    kubernetes_validate.validate(statefulset, kubernetes_validate.latest_version(), strict=True)
    containers = {c["name"]: c for c in statefulset["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"ingest", "oauth2-proxy"}
    env = {e["name"]: e["value"] for e in containers["ingest"]["env"]}
    settings = Settings(api_token=API_TOKEN, **{name.removeprefix("RECVAULT_").lower(): value
                                                for name, value in env.items()})
    assert settings.ops_host == "127.0.0.1" and settings.identity_header == "X-Forwarded-Email"
    assert settings.trust_forwarded_headers and settings.forwarded_for_hops == 2
    args = containers["oauth2-proxy"]["args"]
    assert f"--upstream=http://127.0.0.1:{settings.ops_port}/" in args
    # Twilio's port is not the operator port, and only the proxy's port is named for a Service.
    assert [p["containerPort"] for p in containers["ingest"]["ports"]] == [8080] != [settings.ops_port]
    assert [p["name"] for p in containers["oauth2-proxy"]["ports"]] == ["ops"]


def test_the_service_and_secret_are_valid_and_reach_the_proxy() -> None:
    docs = [doc for doc in yaml.safe_load_all((PROXY / "kubernetes.yaml").read_text()) if doc]
    for doc in docs:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    [service] = [doc for doc in docs if doc["kind"] == "Service"]
    [secret] = [doc for doc in docs if doc["kind"] == "Secret"]
    statefulset = _patched_statefulset()
    assert service["spec"]["selector"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["ops"]
    [proxy] = [c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == "oauth2-proxy"]
    assert proxy["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert set(secret["stringData"]) == {"OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_CLIENT_SECRET",
                                         "OAUTH2_PROXY_COOKIE_SECRET"}


def test_the_compose_override_sends_the_proxy_to_the_operator_port_which_is_not_published() -> None:
    base = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    override = yaml.safe_load((PROXY / "docker-compose.yml").read_text())["services"]
    assert set(override) == {"ingest", "oauth2-proxy"}
    env = override["ingest"]["environment"]
    settings = Settings(api_token=API_TOKEN, **{name.removeprefix("RECVAULT_").lower(): value
                                                for name, value in env.items()})
    assert settings.identity_header == "X-Forwarded-Email" and settings.trust_forwarded_headers
    assert f"--upstream=http://ingest:{settings.ops_port}/" in override["oauth2-proxy"]["command"]
    published = [port.split(":")[-1] for port in base["ingest"].get("ports", []) + override["ingest"].get("ports", [])]
    assert str(settings.ops_port) not in published and published == ["8080"]
