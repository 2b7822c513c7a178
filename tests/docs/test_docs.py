"""The documentation holds together: its links resolve, and every setting has exactly one row.

Fast tier, no services: it reads README.md and docs/*.md, imports `recvault.settings` and parses
the repository's Python files.

Links. Every relative link and `#anchor` in README.md and docs/*.md resolves: the file or folder
exists, and an anchor into a Markdown file is the GitHub slug of one of its headings (lower case,
punctuation dropped, spaces made hyphens, `-1`, `-2`, … for repeats).

Settings. The variables recvault reads are
  * `RECVAULT_<FIELD>` for every field of `recvault.settings.Settings` (or the field's own
    alias, when it has one),
  * `RECVAULT_<OLD>` for every old name in `recvault.settings.RENAMED` (still read, deprecated),
  * every `RECVAULT_*` name that a Python file of the repository reads from the environment by
    its literal name (`os.environ[…]`, `os.environ.get(…)`, `os.getenv(…)`, `… in os.environ`):
    the variables of test runs, since only `recvault.settings` reads the environment for
    recvault itself.
A variable is documented by a *settings row*: a row of a Markdown table in README.md or
docs/*.md whose first cell names it, in full, in a code span that is not inside a link. A first
cell that names a variable only as a link (README's table of the ten settings everyone sets,
`[`RECVAULT_S3_BUCKET`](docs/configuration.md#s3)`) is a *pointer*: it is not counted, and it
must lead to the section of docs/configuration.md that holds the variable's row.
Every variable has exactly one settings row; every settings row names a variable recvault reads.
"""

from __future__ import annotations

import ast
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

from recvault.settings import RENAMED, Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
DEVELOPMENT = ROOT / "docs" / "development.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]

# The settings the README must name: the product's contract with whoever deploys it.
CONTRACT = [
    "RECVAULT_PUBLIC_URL",
    "RECVAULT_TWILIO_AUTH_TOKENS",
    "RECVAULT_TWILIO_ACCOUNT_SID",
    "RECVAULT_TWILIO_API_BASE_URL",
    "RECVAULT_BROKER_URL",
    "RECVAULT_S3_BUCKET",
    "RECVAULT_S3_ENDPOINT_URL",
    "RECVAULT_S3_PREFIX",
    "RECVAULT_POLICY_FILE",
    "RECVAULT_DATA_DIR",
]

# Folders whose Python is not the project's own.
NOT_OURS = {".git", ".venv", "venv", "build", "dist", "node_modules", "__pycache__"}

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"""<a\s+(?:name|id)\s*=\s*["']([^"']+)["']""", re.I)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
SETTING = re.compile(r"\bRECVAULT_[A-Z0-9_]*[A-Z0-9]\b")
TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
CELL_SPLIT = re.compile(r"(?<!\\)\|")


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- reading Markdown ------------------------------------------------------------------------


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        opened = FENCE.match(line)
        if fence is None and opened:
            fence = opened[1][0] * len(opened[1])
        elif fence is not None and line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
            fence = None
        elif fence is None:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before repeats are numbered)."""
    text = CODE_SPAN.sub(lambda code: code[2], heading)
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\([^)]*\)", r"\1", text)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@dataclass(frozen=True)
class Heading:
    line: int
    level: int
    anchor: str


@cache
def headings(path: Path) -> tuple[Heading, ...]:
    """The headings of a Markdown file with their anchors, repeats numbered as GitHub does."""
    seen: Counter[str] = Counter()
    found = []
    for number, line in prose_lines(path.read_text()):
        for anchor in HTML_ANCHOR.findall(line):
            found.append(Heading(number, 7, anchor))
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match[2])
        anchor = base if not seen[base] else f"{base}-{seen[base]}"
        seen[base] += 1
        found.append(Heading(number, len(match[1]), anchor))
    return tuple(found)


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline or reference link outside code."""
    kept = {number: line for number, line in prose_lines(path.read_text())}
    # Blank out fenced code but keep line numbers, so a link's text may run over a line break.
    text = "\n".join(kept.get(number, "") for number in range(1, max(kept, default=0) + 1))
    text = CODE_SPAN.sub(lambda code: re.sub(r"[^\n]", " ", code[0]), text)
    found = []
    for pattern, group in ((LINK, 2), (REFERENCE, 1)):
        for match in pattern.finditer(text):
            found.append((text.count("\n", 0, match.start(group)) + 1, match[group]))
    return found


def broken_link(source: Path, target: str) -> str | None:
    """Why `target`, linked from `source`, does not resolve; None when it does."""
    if not target or SCHEME.match(target):
        return None if target else "empty link"
    path_part, _, anchor = target.partition("#")
    destination = (source.parent / unquote(path_part)).resolve() if path_part else source
    if not destination.exists():
        return f"no such file: {path_part}"
    if not anchor:
        return None
    if destination.suffix != ".md":
        return None if re.fullmatch(r"L\d+(-L\d+)?", anchor) else f"anchor into a file that is not Markdown: #{anchor}"
    anchors = {heading.anchor for heading in headings(destination)}
    if unquote(anchor) not in anchors:
        where = relative(destination)
        return f"no heading in {where} has the anchor #{anchor} (its anchors: {', '.join(sorted(anchors))})"
    return None


@dataclass(frozen=True)
class Row:
    """One body row of a Markdown table, by its first cell."""

    path: Path
    line: int
    counted: tuple[str, ...]  # names in code spans outside links: the row documents them
    pointers: tuple[tuple[str, str], ...]  # (name, link target) of names inside links

    @property
    def where(self) -> str:
        return f"{relative(self.path)}:{self.line}"


def table_rows(path: Path) -> list[Row]:
    lines = prose_lines(path.read_text())
    rows = []
    in_table = False
    for index, (number, line) in enumerate(lines):
        if not line.lstrip().startswith("|"):
            in_table = False
            continue
        if not in_table:
            follows = lines[index + 1][1] if index + 1 < len(lines) else ""
            in_table = bool(TABLE_SEPARATOR.match(follows))
            continue  # the header row
        if TABLE_SEPARATOR.match(line):
            continue
        cells = CELL_SPLIT.split(line.strip().strip("|"))
        first = cells[0]
        pointers = []
        for match in LINK.finditer(first):
            pointers += [(name, match[2]) for name in SETTING.findall(match[1])]
        outside_links = LINK.sub("", first)
        counted = [name for code in CODE_SPAN.finditer(outside_links) for name in SETTING.findall(code[2])]
        rows.append(Row(path, number, tuple(counted), tuple(pointers)))
    return rows


@cache
def all_rows() -> tuple[Row, ...]:
    return tuple(row for path in DOC_FILES for row in table_rows(path))


# --- what the code reads -----------------------------------------------------------------------


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and SETTING.fullmatch(node.value):
        return node.value
    return None


def environment_reads(tree: ast.AST) -> set[str]:
    """RECVAULT_* names read from the environment by their literal name."""
    names = set()
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            name = _literal(node.slice)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in {"get", "pop"} and _is_environ(func.value):
                name = _literal(node.args[0])
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                isinstance(func, ast.Name) and func.id == "getenv"
            ):
                name = _literal(node.args[0])
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn):
            if _is_environ(node.comparators[0]):
                name = _literal(node.left)
        if name:
            names.add(name)
    return names


def python_files() -> list[Path]:
    """The repository's own Python files (not the virtualenv's, the build's or hidden folders')."""
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [
            name for name in subfolders
            if name not in NOT_OURS and not name.startswith(".") and not name.endswith(".egg-info")
        ]
        found += [Path(folder) / name for name in files if name.endswith(".py")]
    return sorted(found)


@cache
def read_settings() -> dict[str, str]:
    """Every RECVAULT_* variable recvault or its tests read → where it comes from and where its row goes."""
    settings: dict[str, str] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        names = [alias] if isinstance(alias, str) else [env_name(field)]
        for name in names:
            settings[name.upper()] = (
                f"field `{field}` of recvault.settings.Settings; its row goes in docs/configuration.md, "
                "in the table of its group under '## Settings'"
            )
    for old, new in RENAMED.items():
        settings[env_name(old)] = (
            f"old name of {env_name(new)} in recvault.settings.RENAMED; its row goes in docs/configuration.md, "
            "in the table under '## Renamed settings'"
        )
    for path in python_files():
        for name in environment_reads(ast.parse(path.read_text(), str(path))) - settings.keys():
            settings[name] = (
                f"read from the environment in {relative(path)}; its row goes in docs/development.md, "
                "in the table under '## Variables for test runs'"
                if relative(path).startswith(("tests/", "bench/"))
                else f"read from the environment in {relative(path)}; its row goes in docs/configuration.md"
            )
    return settings


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Legal hold, erasure and expiry", "legal-hold-erasure-and-expiry"),
        ("Ingest: what one callback costs", "ingest-what-one-callback-costs"),
        ("`recvault up` and `init-bucket`", "recvault-up-and-init-bucket"),
        ("What the suite found (all fixed)", "what-the-suite-found-all-fixed"),
        ("The auditor's workflow", "the-auditors-workflow"),
        ("Compliance: audit trail, legal hold", "compliance-audit-trail-legal-hold"),
        ("Redis memory — the dedup window", "redis-memory--the-dedup-window"),
        ("Set RECVAULT_S3_BUCKET", "set-recvault_s3_bucket"),
    ],
)
def test_a_heading_gets_githubs_anchor(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_repeated_headings_are_numbered_and_code_blocks_are_not_headings(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n## Limits\n\n```sh\n# not a heading\n```\n\n## Limits\n\n### Limits\n")
    assert [heading.anchor for heading in headings(page)] == ["page", "limits", "limits-1", "limits-2"]


def test_the_link_reader_sees_links_not_code(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "See [the\nlayout](archive.md#the-layout) and `[x](not-a-link)`.\n\n"
        "```\n[y](neither)\n```\n\n[ref]: other.md#top\n"
    )
    assert links(page) == [(2, "archive.md#the-layout"), (8, "other.md#top")]


def test_the_row_reader_counts_code_and_not_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "| variable | meaning |\n|---|---|\n"
        "| `RECVAULT_A` / `RECVAULT_B_SECONDS` | `RECVAULT_C` |\n"
        "| [`RECVAULT_D`](configuration.md#s3) | pointer |\n"
    )
    first, second = table_rows(page)
    assert (first.counted, first.pointers) == (("RECVAULT_A", "RECVAULT_B_SECONDS"), ())
    assert (second.counted, second.pointers) == ((), (("RECVAULT_D", "configuration.md#s3"),))


def test_the_environment_reader_sees_reads_not_writes() -> None:
    tree = ast.parse(
        "import os\nfrom os import environ\n"
        "a = os.environ.get('RECVAULT_ONE', '')\nb = os.environ['RECVAULT_TWO']\n"
        "c = os.getenv('RECVAULT_THREE')\nd = 'RECVAULT_FOUR' in environ\n"
        "os.environ['RECVAULT_WRITTEN'] = 'x'\nenv = {'RECVAULT_IN_A_DICT': 'y'}\n"
    )
    assert environment_reads(tree) == {"RECVAULT_ONE", "RECVAULT_TWO", "RECVAULT_THREE", "RECVAULT_FOUR"}


@pytest.mark.parametrize("page", DOC_FILES, ids=relative)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = [
        f"{relative(page)}:{line}: ({target}) {why}"
        for line, target in links(page)
        if (why := broken_link(page, target)) is not None
    ]
    assert broken == [], "links that lead nowhere:\n" + "\n".join(broken)


def test_every_setting_recvault_reads_has_exactly_one_settings_row() -> None:
    rows: dict[str, list[Row]] = defaultdict(list)
    for row in all_rows():
        for name in row.counted:
            rows[name].append(row)
    problems = []
    for name, origin in sorted(read_settings().items()):
        found = rows.get(name, [])
        if not found:
            problems.append(f"{name} has no settings row ({origin}): add the row | `{name}` | <default> | <meaning> |")
        elif len(found) > 1:
            where = ", ".join(row.where for row in found)
            problems.append(
                f"{name} has {len(found)} settings rows ({where}): keep one; elsewhere link to it "
                f"([`{name}`](docs/configuration.md#…) in a table's first cell is a pointer, not a row)"
            )
    assert problems == [], "\n".join(problems)


def test_every_settings_row_names_a_setting_recvault_reads() -> None:
    known = read_settings()
    stale = [
        f"{row.where}: {name} is documented, but neither recvault.settings nor any Python file reads it"
        for row in all_rows()
        for name in row.counted
        if name not in known
    ]
    assert stale == [], "\n".join(stale)


def _section_lines(path: Path, anchor: str) -> range | None:
    """The lines of the section an anchor opens: its heading to the next heading of its level or above."""
    found = headings(path)
    for index, heading in enumerate(found):
        if heading.anchor == anchor:
            ends = [later.line for later in found[index + 1:] if later.level <= heading.level]
            return range(heading.line, ends[0] if ends else 10**9)
    return None


def test_readme_pointers_lead_to_the_section_that_holds_the_row() -> None:
    rows_in_configuration = {name: row for row in table_rows(CONFIGURATION) for name in row.counted}
    problems = []
    for row in all_rows():
        for name, target in row.pointers:
            path_part, _, anchor = target.partition("#")
            destination = (row.path.parent / path_part).resolve()
            if destination != CONFIGURATION:
                problems.append(f"{row.where}: {name} points at {target}, not at docs/configuration.md")
                continue
            documented = rows_in_configuration.get(name)
            section = _section_lines(CONFIGURATION, anchor) if anchor else range(1, 10**9)
            if documented is None:
                problems.append(f"{row.where}: {name} points at docs/configuration.md, which has no row for it")
            elif section is None or documented.line not in section:
                problems.append(
                    f"{row.where}: {name} points at {target}, but its row is at {documented.where}, "
                    "outside that section"
                )
    assert problems == [], "\n".join(problems)


def test_the_readme_names_the_ten_settings_everyone_sets() -> None:
    pointed = {name for row in table_rows(README) for name, _ in row.pointers}
    assert [name for name in CONTRACT if name not in pointed] == []


def paragraphs(path: Path) -> list[str]:
    """Paragraphs of prose (not headings, tables or code), whitespace made single spaces."""
    blocks, current = [], []
    for _, line in [*prose_lines(path.read_text()), (0, "")]:
        if not line.strip() or HEADING.match(line) or line.lstrip().startswith("|"):
            if current:
                blocks.append(" ".join(" ".join(current).split()))
            current = []
        else:
            current.append(line)
    return blocks


def test_no_paragraph_is_written_twice() -> None:
    places: dict[str, list[str]] = defaultdict(list)
    for page in DOC_FILES:
        for paragraph in paragraphs(page):
            if len(paragraph) >= 160:
                places[paragraph].append(relative(page))
    twice = [f"{', '.join(where)}: {text[:100]}…" for text, where in places.items() if len(where) > 1]
    assert twice == [], "say it once and link to it:\n" + "\n".join(twice)
