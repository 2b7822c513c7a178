"""The import rules docs/architecture.md states, checked on every production module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Folders at the top of the repository and the package each installs as.
PACKAGE_DIRS = {"recvault": "recvault", "ingest": "recvault.ingest", "workers": "recvault.workers",
                "storage": "recvault.storage"}
# Tiers, lowest first. A module may import its own component and any component of a lower
# tier; never a sibling of its own tier, never a higher tier.
TIERS: list[dict[str, tuple[str, ...]]] = [
    # The audit trail's record formats (hash chains and seals, the ledger row) are pure: the
    # queue writer adds a ledger row in the same step as the message.
    {"core": ("recvault", "recvault.settings", "recvault.errors", "recvault.events", "recvault.sids",
              "recvault.labels", "recvault.days", "recvault.versions", "recvault.wav", "recvault.logs",
              "recvault.layout", "recvault.audit.chain", "recvault.audit.ledger")},
    {"queue": ("recvault.queue",), "storage": ("recvault.storage",)},
    {"documents": ("recvault.documents",)},
    {"audit": ("recvault.audit",)},
    {"compliance": ("recvault.compliance",), "twilio": ("recvault.twilio",), "ops": ("recvault.ops",)},
    {"audit verify": ("recvault.audit.verify",)},
    {"ingest": ("recvault.ingest",), "workers": ("recvault.workers",)},
    {"launch": ("recvault.launch",), "simulator": ("recvault.simulator",)},
    {"commands": ("recvault.cli", "recvault.commands")},
]
# Modules that pass the whole environment on to the child processes they start.
ENVIRONMENT_FORWARDERS = {"recvault.launch.process", "recvault.launch.services", "recvault.launch.worker_group",
                          "recvault.commands.up"}


def production_modules() -> Iterator[tuple[str, Path]]:
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def component(module: str) -> tuple[int, str]:
    """(tier, component) of a recvault module: the longest matching prefix wins."""
    best: tuple[int, str, int] | None = None
    for tier, components in enumerate(TIERS):
        for name, prefixes in components.items():
            for prefix in prefixes:
                if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[2]):
                    best = (tier, name, len(prefix))
    assert best is not None, f"{module} belongs to no tier: add it to TIERS and docs/architecture.md"
    return best[0], best[1]


def imported_modules(module: str, tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every recvault import, top-level or inside functions."""
    package = module if module.endswith("__init__") else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            names = [f"{base}.{alias.name}" for alias in node.names]
            yield node.lineno, next((n for n in names if n.startswith("recvault.")), base)


MODULES = list(production_modules())


def test_the_package_map_covers_every_module() -> None:
    assert len(MODULES) > 50
    for module, _ in MODULES:
        component(module)


def violations(module: str, source: str) -> list[str]:
    """Each import in `source` (the text of `module`) that breaks the layer rules."""
    tier, own = component(module)
    problems = []
    for line, target in imported_modules(module, ast.parse(source)):
        if target.split(".")[0] in ("ingest", "workers", "storage"):
            problems.append(f"line {line}: imports top-level {target!r}; use recvault.{target}")
            continue
        if not target.startswith("recvault"):
            continue
        target_tier, target_component = component(target)
        if target_component == own:
            continue
        if target_tier >= tier:
            problems.append(f"line {line}: {own} (tier {tier}) imports {target} "
                            f"({target_component}, tier {target_tier})")
    return problems


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_point_down_the_layers(module: str, path: Path) -> None:
    problems = violations(module, path.read_text())
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


def environment_reads(tree: ast.AST) -> Iterator[int]:
    """Lines that read os.environ or call os.getenv (not writes, not copies for a child)."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "getenv":
            yield node.lineno
        if not (isinstance(node, ast.Attribute) and node.attr == "environ"):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store):
            continue  # setting a variable for a library or a child
        yield node.lineno


def test_only_the_settings_class_reads_the_environment() -> None:
    readers = {}
    for module, path in MODULES:
        if module == "recvault.settings" or module in ENVIRONMENT_FORWARDERS:
            continue
        lines = list(environment_reads(ast.parse(path.read_text())))
        if lines:
            readers[module] = lines
    assert readers == {}, f"read the environment outside recvault.settings: {readers}"


def test_the_checks_catch_what_they_guard_against() -> None:
    sibling = "from recvault.workers.tasks import register_tasks\n"
    assert violations("recvault.ingest.views", sibling)
    assert violations("recvault.storage.s3", "def f():\n    from recvault.commands import up\n")
    assert violations("recvault.storage.s3", "from storage.base import Retention\n")
    assert not violations("recvault.workers.tasks", "from recvault.queue.celery_factory import ARCHIVE_TASK\n")
    assert not violations("recvault.storage.s3", "from .base import Retention\n")
    assert violations("recvault.ops.view", "from recvault.workers.dead_letters import DeadLetters\n")
    assert not violations("recvault.ingest.ops.context", "from recvault.ops.view import ArchiveView\n")
    assert list(environment_reads(ast.parse("import os\nx = os.environ.get('A')\n"))) == [2]
    assert list(environment_reads(ast.parse("import os\nos.environ['A'] = 'b'\n"))) == []
