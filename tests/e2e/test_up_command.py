"""`recvault up` (the README's run command) archives the demo recordings end to end, and says so last."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from recvault.launch.services import free_port

pytestmark = pytest.mark.system


def test_up_starts_everything_and_archives_the_demo(redis_url, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update({"RECVAULT_DATA_DIR": str(tmp_path / "data"), "RECVAULT_BROKER_URL": redis_url,
                "RECVAULT_WORKER_METRICS_PORT": "0", "RECVAULT_LOG_LEVEL": "WARNING"})
    ports = [str(free_port()) for _ in range(3)]
    result = subprocess.run(
        [sys.executable, "-m", "recvault.cli", "up", "--demo-only",
         "--port", ports[0], "--s3-port", ports[1], "--sim-port", ports[2]],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Recording Status Callback URL: http://127.0.0.1:{ports[0]}/twilio/recording-status" in out
    assert "204×6" in out
    media = re.findall(r"media/date=\S+/(RE[0-9a-f]{32})\.wav\s+(\d+) bytes", out)
    assert len(media) == 3
    # 20 s mono, 45 s dual and 30 s mono WAV at 8 kHz 16-bit, plus 44-byte headers.
    assert sorted(int(size) for _, size in media) == [320044, 480044, 1440044]
    assert len(re.findall(r"events/date=\S+-in-progress\.json", out)) == 3
    assert f"Status page: http://127.0.0.1:{ports[0]}/status" in out
    listed = re.search(r"status page and API: (\d+) recording\(s\) listed", out)
    assert listed is not None and int(listed[1]) >= 3, out[-2000:]
    api_token = (tmp_path / "data" / "embedded-api-token").read_text().strip()
    assert "API token (embedded mode" in out and api_token in out
    identity = tmp_path / "data" / "embedded-twilio.json"
    assert oct(identity.stat().st_mode & 0o777) == "0o600"
    token = __import__("json").loads(identity.read_text())["auth_token"]
    assert token not in out and token not in result.stderr
    # The children log to files; the terminal gets up's own lines, its summary last.
    logs = tmp_path / "data" / "logs"
    assert {"ingest.log", "worker.log", "beat.log", "simulator.log"} <= {p.name for p in logs.iterdir()}
    assert "[queues]" in (logs / "worker.log").read_text()  # the Celery banner
    for child_output in ("[queues]", "SecurityWarning", "ready.", "beat: Starting", "listening on",
                         "Twilio simulator on"):
        assert child_output not in out + result.stderr, child_output
    assert out.rstrip().splitlines()[-1] == f"Logs: {logs}"
    # With RECVAULT_BROKER_URL set, that broker is used; the demo's ledger rows were moved to S3.
    assert f"using Redis at {redis_url}" in out
    assert "accepted-callback ledger: 6 accepted row(s) flushed" in out
    # --demo-only stops everything: the file naming the services is gone with them.
    assert not (tmp_path / "data" / "env").exists()
