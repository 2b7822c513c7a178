"""`recvault up`'s summary names where the status page really is."""

from __future__ import annotations

import argparse
from pathlib import Path

from recvault.commands.up import _summary
from recvault.settings import Settings


def test_the_summary_points_at_the_operator_listener_when_ops_port_is_set(tmp_path: Path, capsys) -> None:
    args = argparse.Namespace(host="127.0.0.1", port=8080, demo_only=False)
    base = "http://127.0.0.1:8080"
    _summary(args, Settings(ops_port=9443), base, "token", tmp_path, tmp_path / "env", [])
    out = capsys.readouterr().out
    assert f"Recording Status Callback URL: {base}/twilio/recording-status" in out
    assert "Status page: http://127.0.0.1:9443/status (sign in at http://127.0.0.1:9443/status/login" in out
    _summary(args, Settings(), base, "token", tmp_path, tmp_path / "env", [])
    assert f"Status page: {base}/status" in capsys.readouterr().out
