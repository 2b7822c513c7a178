"""deploy/prometheus/alerts.yml in a real Prometheus, scraping a real `recvault serve` and `recvault worker`.

Debian's `prometheus` runs on a free port with a database of its own, scrapes and evaluates
every second, and loads the shipped rule file as it is: no expression, window or `for:` is
changed. While recordings are archived no alert is pending or firing; once Twilio refuses the
worker's API key, RecvaultTwilioCredentialsRefused and RecvaultDeadLetters fire. A single
recording is refused (its resource and media requests, sent together, within milliseconds), so
the 401 and dead-letter counters first appear at their final values and do not move after: the
alerts have to count a counter's first appearance to see them.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from recvault.launch.process import ChildProcess, Component, http_get
from recvault.launch.services import free_port
from recvault.simulator.callbacks import CallbackSender, callback_sequence
from recvault.simulator.recordings import SimRecording
from recvault.simulator.server import SimServer
from recvault.workers.dead_letters import DeadLetters
from tests.fixtures.simulator import SimAccount, SimApiKey
from tests.fixtures.worker import wait_for

# Three real processes and a second of scrapes and evaluations at a time: the system tier.
pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
CALLBACK_PATH = "/twilio/recording-status"
# Scrape and rule evaluation interval: alerts without `for:` fire a second or two after the fact.
INTERVAL_SECONDS = 1
# Local requests go straight to 127.0.0.1, whatever HTTP(S)_PROXY says.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is required for this test (apt-get install prometheus); .ci/run installs it")
    return found


class Prometheus(ChildProcess):
    """A private Prometheus server: its own port, database and configuration."""

    startup_timeout = 30.0

    def __init__(self, directory: Path, targets: dict[str, str]) -> None:
        super().__init__("prometheus", log_path=directory / "prometheus.log")
        self.binary = prometheus_binary()
        self.directory = directory
        self.port = free_port()
        self.config = directory / "prometheus.yml"
        directory.mkdir(parents=True, exist_ok=True)
        # The job names the alerts and deploy/prometheus/prometheus.yml use.
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{INTERVAL_SECONDS}s", "scrape_timeout": f"{INTERVAL_SECONDS}s",
                       "evaluation_interval": f"{INTERVAL_SECONDS}s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                               for job, target in targets.items()],
        }))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]

    def is_ready(self) -> bool:
        return http_get(f"{self.url}/-/ready") is not None

    def api(self, path: str, **params: str) -> Any:
        """The `data` of an HTTP API answer."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with _LOCAL.open(f"{self.url}/api/v1/{path}{query}", timeout=5) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        return body["data"]

    def value(self, expr: str) -> float | None:
        """The value of a PromQL expression that gives one sample, or None when it gives none."""
        result = self.api("query", query=expr)["result"]
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]

    def firing(self) -> dict[str, dict]:
        return {alert["labels"]["alertname"]: alert for alert in self.alerts() if alert["state"] == "firing"}

    def rules(self) -> list[dict]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def evaluations(self) -> int:
        """How many times the rule groups have been evaluated, all together (Prometheus's own metrics)."""
        exposition = http_get(f"{self.url}/metrics")
        assert exposition is not None, "Prometheus's /metrics did not answer"
        return int(sum(sample.value for family in text_string_to_metric_families(exposition.decode())
                       for sample in family.samples if sample.name == "prometheus_rule_group_iterations_total"))

    def wait_evaluations(self, count: int) -> None:
        """Return once every rule group has been evaluated `count` more times."""
        groups = len(yaml.safe_load(ALERTS.read_text())["groups"])
        target = self.evaluations() + count * groups
        wait_for(lambda: self.evaluations() >= target, timeout=10 + 5 * count * INTERVAL_SECONDS,
                 what=f"{count} more rule evaluations")


@dataclass
class Monitored:
    """Prometheus watching an ingest and a worker."""

    prometheus: Prometheus
    ingest_url: str

    def wait_scraped(self) -> None:
        """Both targets scraped successfully and the rules evaluated on what was scraped."""
        for job in ("recvault-ingest", "recvault-worker"):
            wait_for(lambda job=job: self.prometheus.value(f'up{{job="{job}"}}') == 1, timeout=30,
                     what=f"Prometheus to scrape {job}")
        self.prometheus.wait_evaluations(2)

    def send_callbacks(self, token: str, recordings: list[SimRecording], api_base: str) -> None:
        async def send() -> None:
            async with CallbackSender(self.ingest_url + CALLBACK_PATH, auth_token=token) as sender:
                sent = await sender.send_many([sender.prepare(params) for rec in recordings
                                               for params in callback_sequence(rec, api_base=api_base)])
            assert {result.http_status for result in sent} == {204}, sent

        asyncio.run(send())


@contextmanager
def monitored(tmp_path: Path, env: dict[str, str]) -> Iterator[Monitored]:
    """`recvault serve`, `recvault worker` (its default two processes) and Prometheus scraping both."""
    ingest_port, metrics_port = free_port(), free_port()
    logs = tmp_path / "logs"
    env = {**env, "RECVAULT_WORKER_METRICS_PORT": str(metrics_port), "RECVAULT_WORKER_METRICS_HOST": "127.0.0.1"}
    ingest = Component("ingest", ["serve", "--host", "127.0.0.1", "--port", str(ingest_port)], env,
                       log_path=logs / "ingest.log", ready_url=f"http://127.0.0.1:{ingest_port}/healthz")
    worker = Component("worker", ["worker", "-c", "2"], env, log_path=logs / "worker.log",
                       ready_url=f"http://127.0.0.1:{metrics_port}/metrics")
    prometheus = Prometheus(tmp_path / "prometheus", {"recvault-ingest": f"127.0.0.1:{ingest_port}",
                                                      "recvault-worker": f"127.0.0.1:{metrics_port}"})
    with ExitStack() as stack:
        for component in (ingest, worker, prometheus):
            component.start(wait=False)
            stack.callback(component.stop)
        for component in (ingest, worker, prometheus):
            component.wait_ready(component.startup_timeout)
        log = logs / "worker.log"
        wait_for(lambda: b" ready." in log.read_bytes(), timeout=60, what="the worker")
        yield Monitored(prometheus, f"http://127.0.0.1:{ingest_port}")


def environment(redis_url: str, s3_store, sim: SimServer, account: SimAccount, key: SimApiKey,
                data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=redis_url, RECVAULT_S3_ENDPOINT_URL=s3_store.endpoint_url,
               RECVAULT_S3_BUCKET=s3_store.bucket, RECVAULT_TWILIO_AUTH_TOKENS=account.token,
               RECVAULT_TWILIO_ACCOUNT_SID=account.sid, RECVAULT_TWILIO_API_BASE_URL=sim.base_url,
               RECVAULT_TWILIO_API_KEY_SID=key.sid, RECVAULT_TWILIO_API_KEY_SECRET=key.secret,
               RECVAULT_DATA_DIR=str(data_dir), RECVAULT_LOG_FORMAT="text", PYTHONUNBUFFERED="1")
    return env


def rule_names() -> set[str]:
    return {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}


def assert_rules_loaded_and_healthy(prometheus: Prometheus) -> None:
    rules = prometheus.rules()
    assert {rule["name"] for rule in rules} == rule_names()
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken, f"rules that failed to evaluate: {broken}"


def test_no_alert_while_recordings_are_archived(redis_url, s3_store, sim, sim_account, sim_api_key,
                                                tmp_path: Path) -> None:
    recordings = [sim.create_recording(duration=2 + n, channels=1 + n % 2) for n in range(3)]
    env = environment(redis_url, s3_store, sim, sim_account, sim_api_key, tmp_path / "data")
    with monitored(tmp_path, env) as stack:
        prometheus = stack.prometheus
        stack.wait_scraped()
        stack.send_callbacks(sim_account.token, recordings, sim.base_url)
        wait_for(lambda: len(list(s3_store.list_keys("metadata/"))) == len(recordings), timeout=60,
                 what="every recording archived")
        wait_for(lambda: prometheus.value("sum(recvault_archived_recordings_total)") == len(recordings),
                 timeout=30, what="Prometheus to scrape the archives")
        # A few evaluations on what was scraped after the last archive.
        prometheus.wait_evaluations(3)
        alerts = prometheus.alerts()
        assert_rules_loaded_and_healthy(prometheus)
        assert prometheus.value('sum(recvault_callbacks_accepted_total{outcome="queued"})') == 2 * len(recordings)
        assert prometheus.value("sum(recvault_dead_letters_total)") is None
    assert alerts == [], f"alerts pending or firing on a healthy run: {alerts}"


def test_a_revoked_api_key_fires_credentials_refused_and_dead_letters(redis_url, s3_store, sim, sim_account,
                                                                     sim_api_key, tmp_path: Path) -> None:
    before = sim.create_recording(duration=2)
    after = sim.create_recording(duration=2)
    env = environment(redis_url, s3_store, sim, sim_account, sim_api_key, tmp_path / "data")
    letters = DeadLetters.connect(redis_url)
    try:
        with monitored(tmp_path, env) as stack:
            prometheus = stack.prometheus
            stack.wait_scraped()
            # The key works: one recording archived, seen by Prometheus, and no alert.
            stack.send_callbacks(sim_account.token, [before], sim.base_url)
            wait_for(lambda: prometheus.value("sum(recvault_archived_recordings_total)") == 1, timeout=60,
                     what="Prometheus to see the first recording archived")
            prometheus.wait_evaluations(2)
            assert prometheus.firing() == {}

            # Twilio gives the key a new secret (the simulator's control API): the worker's is refused.
            revoke = urllib.request.Request(
                f"{sim.base_url}/_sim/api-keys", method="POST", headers={"Content-Type": "application/json"},
                data=json.dumps({"account_sid": sim_account.sid, "sid": sim_api_key.sid,
                                 "secret": secrets.token_urlsafe(24)}).encode())
            with _LOCAL.open(revoke, timeout=5) as answer:
                assert answer.status == 201
            started = time.monotonic()
            stack.send_callbacks(sim_account.token, [after], sim.base_url)
            letter = wait_for(lambda: letters.get(f"{after.sid}:completed"), timeout=60,
                              what="the recording dead-lettered")
            assert letter.error == "TwilioAuthFailed", letter
            expected = {"RecvaultTwilioCredentialsRefused", "RecvaultDeadLetters"}

            def fired() -> dict[str, dict] | None:
                found = prometheus.firing()
                return found if found.keys() >= expected else None

            firing = wait_for(fired, timeout=30, what=" and ".join(sorted(expected)) + " firing")
            fired_after = time.monotonic() - started
            refused = prometheus.value('sum(recvault_twilio_errors_total{status="401"})')
            assert_rules_loaded_and_healthy(prometheus)
    finally:
        letters.close()
    assert set(firing) == expected, firing
    assert firing["RecvaultTwilioCredentialsRefused"]["labels"] == {
        "alertname": "RecvaultTwilioCredentialsRefused", "severity": "critical", "status": "401"}
    assert firing["RecvaultDeadLetters"]["labels"] == {
        "alertname": "RecvaultDeadLetters", "severity": "warning", "error": "TwilioAuthFailed"}
    assert firing["RecvaultDeadLetters"]["annotations"]["summary"] == (
        "recvault dead-lettered 1 event(s) (TwilioAuthFailed) in 15 minutes")
    assert refused in (1, 2)  # the resource request, and the media request if it had started
    print(f"alerts firing {fired_after:.1f} s after the key was revoked")
