"""`recvault reconcile` against the simulator: finds recordings whose callbacks never came, archives them once."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import redis

from recvault import layout
from recvault.cli import main
from recvault.compliance.erasure import erase
from recvault.compliance.policy import Policy
from recvault.settings import Settings
from tests.fixtures.worker import running_worker, wait_for

DAY = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def env(sim, sim_account, s3_store, s3_endpoint, redis_url, tmp_path, monkeypatch) -> dict[str, str]:
    """RECVAULT_* settings pointing at the simulator, the test's bucket and Redis database."""
    variables = {
        "RECVAULT_TWILIO_ACCOUNT_SID": sim_account.sid, "RECVAULT_TWILIO_AUTH_TOKENS": sim_account.token,
        "RECVAULT_TWILIO_API_BASE_URL": sim.base_url, "RECVAULT_BROKER_URL": redis_url,
        "RECVAULT_S3_BUCKET": s3_store.bucket, "RECVAULT_S3_ENDPOINT_URL": s3_endpoint,
        "RECVAULT_DATA_DIR": str(tmp_path), "RECVAULT_LOG_LEVEL": "WARNING",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return variables


def reconcile(capsys, *args: str) -> dict:
    assert main(["reconcile", "--from", "2026-03-02", "--to", "2026-03-02", "--page-size", "2", "--json",
                 *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_reconcile_archives_recordings_whose_callbacks_never_came_and_queues_nothing_twice(
        env, sim, archive_env, redis_url, capsys) -> None:
    called_back = [sim.create_recording(date_created=DAY + timedelta(minutes=i), duration=2) for i in range(2)]
    silent = [sim.create_recording(date_created=DAY + timedelta(minutes=10 + i), duration=3, channels=1 + i % 2)
              for i in range(3)]
    sim.create_recording(date_created=DAY, status="absent")  # nothing to archive
    sim.create_recording(date_created=DAY - timedelta(days=1), duration=2)  # outside the window
    for recording in called_back:
        archive_env.archive(recording)
    sim.state.list_page_overlap = 1  # each page repeats the last recording of the one before
    queue = redis.Redis.from_url(redis_url)

    found = reconcile(capsys)
    (account,) = found["accounts"]
    assert (account["listed"], account["not_completed"], account["archived"]) == (6, 1, 2)
    assert account["pages"] >= 4 and account["repeated"] == account["pages"] - 1
    assert sorted(gap["sid"] for gap in account["missing"]) == sorted(r.sid for r in silent)
    assert found["queued"] == 0 and queue.llen("recvault") == 0  # only a report without --enqueue

    first = reconcile(capsys, "--enqueue")
    assert (first["missing"], first["queued"]) == (3, 3) and queue.llen("recvault") == 3
    again = reconcile(capsys, "--enqueue")  # run twice before any worker: nothing queued twice
    assert (again["missing"], again["queued"], again["accounts"][0]["already_queued"]) == (3, 0, 3)
    assert queue.llen("recvault") == 3

    with running_worker(Settings()):
        for recording in silent:
            key = layout.metadata_key("", recording.start_time.strftime("%Y-%m-%d"), recording.sid)
            document = wait_for(lambda key=key: archive_env.store.head(key), timeout=60, what=f"{key} archived")
            assert document is not None
            archived = json.loads(archive_env.store.get_bytes(key))
            assert (archived["media_size"], archived["media_sha256"]) == sim.expected(
                recording, "wav", recording.channels)
    after = reconcile(capsys, "--enqueue")
    assert (after["missing"], after["queued"], after["accounts"][0]["archived"]) == (0, 0, 5)
    assert queue.llen("recvault") == 0


def test_the_text_report_and_a_progress_line_on_a_terminal(env, sim) -> None:
    gone = sim.create_recording(date_created=DAY, duration=4, source="DialVerb")
    master, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "recvault.cli", "reconcile", "--since", "2026-03-01", "--until", "2026-03-03",
             "--page-size", "1"],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=60)
        os.close(terminal)
        shown = _read_all(master)
    finally:
        os.close(master)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"missing {gone.sid} {rfc2822(gone.start_time)}  4 s  1 ch  DialVerb"
    assert lines[1].endswith("2026-03-01 to 2026-03-03: 1 listed at Twilio in 1 page(s) (0 listed twice), "
                             "0 not completed, 0 archived, 1 missing")
    assert f"\r\x1b[Kreconcile {gone.account_sid}: page 1, 1 listed, 0 archived, 1 missing" in shown


def test_an_erased_recording_is_reported_erased_not_missing_and_never_queued(env, sim, archive_env, redis_url,
                                                                            capsys) -> None:
    archive_env.policy = Policy.from_dict({"default": {"retention_days": 30, "mode": "none"}})
    erased = sim.create_recording(date_created=DAY, duration=2)
    archive_env.archive(erased)
    erase(archive_env.store, "", erased.sid, reason="DSAR 12", requested_by="subject", actor="dpo",
          now=datetime.now(UTC))
    capsys.readouterr()

    assert main(["reconcile", "--from", "2026-03-02", "--to", "2026-03-02", "--enqueue"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"erased {erased.sid} {rfc2822(erased.start_time)}  tombstone tombstones/{erased.sid}.json  " \
                       "not queued"
    assert lines[1].endswith("0 not completed, 0 archived, 1 erased, 0 missing")
    assert redis.Redis.from_url(redis_url).llen("recvault") == 0
    assert reconcile(capsys)["erased"] == 1


def test_a_reversed_window_or_a_malformed_day_is_refused(env, capsys) -> None:
    assert main(["reconcile", "--from", "2026-03-02", "--to", "2026-03-01"]) == 2
    assert "--to 2026-03-01 is before --from 2026-03-02" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        main(["reconcile", "--from", "20260302"])
    assert refused.value.code == 2 and "not a day written YYYY-MM-DD" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        main(["reconcile", "--from", "2026-03-02", "--page-size", "1001"])
    assert refused.value.code == 2 and "not a page size from 1 to 1000" in capsys.readouterr().err


def rfc2822(moment: datetime) -> str:
    """Twilio's way of writing a time, as the simulator lists it."""
    return format_datetime(moment)


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
