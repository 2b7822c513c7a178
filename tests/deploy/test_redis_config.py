"""The broker Redis that is tested is the one that is shipped: deploy/redis/redis.conf, in Compose and in every suite.

Compose runs redis-server with deploy/redis/redis.conf and nothing else; every redis-server the
tests, the fault suite, the benchmarks and `recvault up` start (RedisServer) runs with that same
file, and only adds where it listens and keeps its data. These tests fail when the two part
ways: an option added to Compose's command line, a directive of the file overridden by a
launcher, a fallback that no longer says what the file says, or the file giving up the
promise that a Redis kill -9 loses no callback ingest answered 2xx.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import redis
import yaml

from recvault.launch import services
from recvault.launch.services import SHIPPED_REDIS_CONF, SHIPPED_REDIS_DIRECTIVES, RedisServer, TlsFiles

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
# What "no callback answered 2xx is lost when Redis is killed" needs of the broker.
NO_LOSS = {"appendonly": "yes", "appendfsync": "always"}
# What a full Redis must do: refuse writes (ingest spools), never evict queued messages or dedup keys.
NO_EVICTION = {"maxmemory-policy": "noeviction"}


def directives(text: str) -> dict[str, str]:
    """A redis.conf's directives, name → value (as CONFIG GET answers them); a repeated name fails."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        name, value = words[0].lower(), " ".join(words[1:])
        assert name not in found, f"{name} is set twice in the broker's config"
        found[name] = value
    return found


def shipped() -> dict[str, str]:
    return directives(SHIPPED_REDIS_CONF.read_text())


def test_the_shipped_file_keeps_every_answered_callback_and_evicts_nothing() -> None:
    conf = shipped()
    for name, value in {**NO_LOSS, **NO_EVICTION}.items():
        assert conf.get(name) == value, (
            f"deploy/redis/redis.conf: {name} {conf.get(name)!r}, expected {value!r}: with less, a Redis "
            "kill -9 may lose callbacks ingest has already answered 2xx (docs/reliability.md)")


def test_the_launchers_fallback_says_what_the_file_says() -> None:
    assert dict(SHIPPED_REDIS_DIRECTIVES) == shipped()
    assert len(dict(SHIPPED_REDIS_DIRECTIVES)) == len(SHIPPED_REDIS_DIRECTIVES)


def test_compose_runs_redis_with_the_shipped_file_and_nothing_else() -> None:
    redis_service = yaml.safe_load(COMPOSE.read_text())["services"]["redis"]
    binary, *arguments = redis_service["command"]
    assert binary == "redis-server"
    # The file alone: any option after it would override what the suites test.
    assert len(arguments) == 1, f"Compose passes redis-server more than the shipped file: {arguments}"
    (in_container,) = arguments
    mounts = {}
    for volume in redis_service["volumes"]:
        source, _, rest = volume.partition(":")
        target, _, mode = rest.partition(":")
        mounts[target] = (source, mode)
    source, mode = mounts[in_container]
    assert (DEPLOY / source).resolve() == SHIPPED_REDIS_CONF.resolve()
    assert mode == "ro"  # a CONFIG REWRITE can never change the shipped file


def test_nothing_in_deploy_names_another_fsync_policy() -> None:
    """Manifests, comments and examples in deploy/ agree with the file (`appendfsync always` only)."""
    named: dict[str, list[str]] = {}
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix in {".yml", ".yaml", ".conf", ".md", ".toml", ".json", ""}:
            for policy in re.findall(r"appendfsync[\"',\s]+(\w+)", path.read_text(errors="replace")):
                named.setdefault(policy, []).append(str(path.relative_to(ROOT)))
    assert set(named) <= {"always"}, named


@pytest.mark.parametrize("kind", ["plain", "replica", "tls"])
def test_every_launcher_command_reads_the_shipped_file_first_and_overrides_none_of_it(
        tmp_path: Path, kind: str) -> None:
    tls = TlsFiles(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem") if kind == "tls" else None
    server = RedisServer(tmp_path / "redis", replica_of=6399 if kind == "replica" else None, tls=tls)
    command = server.command()
    assert command[1] == str(server.config_path)
    overridden = {arg[2:] for arg in command[2:] if arg.startswith("--")} & shipped().keys()
    assert not overridden, f"RedisServer overrides the shipped {sorted(overridden)}"


def test_the_suites_redis_runs_with_exactly_the_shipped_settings(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        running = {name: client.config_get(name)[name] for name in shipped()}
        client.close()
    finally:
        server.stop()
    assert running == shipped()
    # Its own copy, so a CONFIG REWRITE (Sentinel sends one to a replica it reconfigures)
    # never touches the shipped file.
    assert server.config_path.read_text() == SHIPPED_REDIS_CONF.read_text()
    assert server.config_path.resolve() != SHIPPED_REDIS_CONF.resolve()


def test_an_installed_recvault_without_deploy_runs_the_same_settings(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "SHIPPED_REDIS_CONF", tmp_path / "absent" / "redis.conf")
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        running = {name: client.config_get(name)[name] for name in dict(SHIPPED_REDIS_DIRECTIVES)}
        client.close()
    finally:
        server.stop()
    assert running == dict(SHIPPED_REDIS_DIRECTIVES)


def test_no_suite_changes_what_its_redis_runs_with() -> None:
    """No subclass of RedisServer builds its own command line, and nothing outside the fsync
    benchmark switches a shipped directive on a running server (CONFIG SET)."""
    found = []
    for folder in ("recvault", "ingest", "workers", "storage", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(_named(base) == "RedisServer" for base in node.bases):
                    methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
                    found += [f"{path.relative_to(ROOT)}: {node.name}.{name}"
                              for name in methods & {"command", "_command", "before_start"}]
                if (isinstance(node, ast.Call) and _named(node.func) == "config_set" and node.args
                        and isinstance(node.args[0], ast.Constant) and node.args[0].value in shipped()
                        and path.relative_to(ROOT) != Path("bench/fsync.py")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: CONFIG SET {node.args[0].value}")
    assert not found, found


def _named(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None
