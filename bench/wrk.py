"""Saturation load with wrk replaying pre-signed callbacks; installs Debian's wrk when missing."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk_callbacks.lua")


def ensure_wrk() -> str:
    """The wrk binary; `apt-get install -y wrk` (after `apt-get update` if needed) when absent."""
    found = shutil.which("wrk")
    if found:
        return found
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: completed requests, their rate, refusals and latency percentiles."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "rate": round(self.rate, 1)}


def run_wrk(url: str, signed: Path, *, seconds: float, connections: int, threads: int = 1) -> WrkResult:
    """Drive `url` as hard as `connections` keep-alive connections allow for `seconds`."""
    argv = [ensure_wrk(), "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", "15s", "-s", str(SCRIPT), url, "--", str(signed), str(threads)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    line = next((text for text in done.stdout.splitlines() if text.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}")
    raw = json.loads(line)
    ms = lambda key: round(raw[key] / 1000, 3)  # noqa: E731
    return WrkResult(raw["requests"], raw["duration_us"] / 1e6, raw["non_2xx"], raw["socket_errors"],
                     ms("p50_us"), ms("p90_us"), ms("p99_us"), ms("mean_us"), ms("max_us"))
