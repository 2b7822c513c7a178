"""One scenario's figures and the Markdown table that reports them."""

from __future__ import annotations

from dataclasses import dataclass, field

COLUMNS = ("scenario", "injected", "accepted", "archived", "dead-lettered", "lost", "duplicated",
           "5xx", "checks", "seconds")


@dataclass
class ScenarioResult:
    """Counts for one scenario; `problems` lists every failed scenario-specific check."""

    scenario: str
    injected: str
    accepted: int = 0
    archived: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicated: int = 0
    server_errors: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing lost, duplicated or answered 5xx, and every check passed."""
        return not (self.lost or self.duplicated or self.server_errors or self.problems)

    def row(self) -> tuple[str, ...]:
        checks = "ok" if not self.problems else f"{len(self.problems)} failed"
        return (self.scenario, self.injected, str(self.accepted), str(self.archived),
                str(self.dead_lettered), str(self.lost), str(self.duplicated),
                str(self.server_errors), checks, f"{self.seconds:.0f}")


def markdown_table(results: list[ScenarioResult]) -> str:
    """The results as a Markdown table, then each scenario's notes and failed checks."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(result.row()) + " |" for result in results]
    for result in results:
        details = [f"  - {note}" for note in result.notes]
        details += [f"  - FAILED: {problem}" for problem in result.problems]
        if details:
            lines += ["", f"{result.scenario}:", *details]
    return "\n".join(lines)
