"""The built wheel installs one import package, `recvault`, with the card's folders inside it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    [built] = out.glob("recvault-*.whl")
    return built


def test_the_wheel_has_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [top_level] = [n for n in names if n.endswith("top_level.txt")]
        assert archive.read(top_level).decode().split() == ["recvault"]
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"recvault"}
    for module in ("recvault/ingest/app.py", "recvault/workers/tasks.py", "recvault/storage/s3.py",
                   "recvault/queue/writer.py", "recvault/commands/serve.py"):
        assert module in names


def test_installed_it_imports_as_recvault_only(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)

    def python(code: str) -> subprocess.CompletedProcess[str]:
        # Run outside the repository, so only the installed copy can be found.
        return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                              capture_output=True, text=True, timeout=60)

    found = python("import recvault.ingest.app, recvault.workers.tasks; print(recvault.ingest.app.__file__)")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().startswith(str(site))
    for generic in ("ingest", "workers", "storage"):
        assert "ModuleNotFoundError" in python(f"import {generic}").stderr
