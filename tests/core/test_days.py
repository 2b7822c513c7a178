"""One parser for a day written YYYY-MM-DD, and every command option and route that takes a day uses it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recvault.cli import build_parser, main
from recvault.commands import options
from recvault.compliance.hold_selector import BadSelector, Selector
from recvault.days import parse_day
from recvault.ops.query import BadQuery, RecordingQuery, day_parameter
from recvault.workers.beat_tasks import InvalidSchedule, scheduled_days

RECORDING = "RE" + "0" * 32
# date.fromisoformat takes the first two; the last two are no calendar day written YYYY-MM-DD.
NOT_DAYS = ["20261124", "2026-W48-1", "2026-11-31", "2026-1-1"]
MORE_NOT_DAYS = ["", "2026-11", "2026-11-24T00:00", "2026-11-24 ", " 2026-11-24", "2026-11-24\n", "2026/11/24",
                 "2025-02-29", "2026-13-01", "2026-00-10", "0000-01-01", "+2026-11-24", "2026-W48",
                 "２０２６-１１-２４", "٢٠٢٦-١١-٢٤", "24-11-2026", "2026-11-24Z"]
# Every command option that takes a day, after what its command line needs before it.
DAY_OPTIONS = [
    ["hold", "set", "--reason", "r", "--from"],
    ["hold", "set", "--reason", "r", "--to"],
    ["erase", RECORDING, "--reason", "r", "--date"],
    ["purge", "--date-before"],
    ["audit", "--from"],
    ["audit", "--to"],
    ["audit", "--date"],
    ["audit", "verify", "--from"],
    ["audit", "verify", "--to"],
    ["audit", "show", RECORDING, "--date"],
    ["reconcile", "--from"],
    ["reconcile", "--from", "2026-11-01", "--to"],
]


@pytest.mark.parametrize(("text", "day"), [("2026-11-24", date(2026, 11, 24)), ("2024-02-29", date(2024, 2, 29)),
                                           ("0001-01-01", date(1, 1, 1)), ("9999-12-31", date(9999, 12, 31))])
def test_a_day_written_yyyy_mm_dd_is_that_day(text: str, day: date) -> None:
    assert parse_day(text) == day


@pytest.mark.parametrize("text", NOT_DAYS + MORE_NOT_DAYS)
def test_anything_else_is_refused_saying_what_a_day_looks_like(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_day(text)
    assert str(refused.value) == f"{text!r} is not a day written YYYY-MM-DD"


def test_a_long_refused_value_is_quoted_shortened() -> None:
    with pytest.raises(ValueError) as refused:
        parse_day("2026-11-24" * 100)
    assert len(str(refused.value)) < 100


@given(st.dates())
def test_every_calendar_day_reads_back_from_its_iso_form(day: date) -> None:
    assert parse_day(day.isoformat()) == day


@given(st.text(max_size=12))
def test_whatever_it_accepts_is_ten_ascii_characters_in_its_own_iso_form(text: str) -> None:
    try:
        day = parse_day(text)
    except ValueError:
        return
    assert text == day.isoformat() and len(text) == 10 and text.isascii()


def _day_actions(parser: argparse.ArgumentParser, path: str = "recvault") -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _day_actions(sub, f"{path} {name}")
        elif action.dest.startswith("date") or action.dest.endswith("dates"):
            yield path, action


def test_every_day_option_of_every_command_reads_it_with_the_one_parser() -> None:
    found = {f"{path} {action.option_strings[0]}": action.type for path, action in _day_actions(build_parser())}
    assert len(found) == len(DAY_OPTIONS), sorted(found)
    assert set(found.values()) == {options.day}


@pytest.mark.parametrize("text", NOT_DAYS)
@pytest.mark.parametrize("argv", DAY_OPTIONS, ids=[" ".join(argv) for argv in DAY_OPTIONS])
def test_every_day_option_refuses_what_is_not_a_day(capsys, argv: list[str], text: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, text])
    assert exited.value.code == 2
    assert f"{text!r} is not a day written YYYY-MM-DD" in capsys.readouterr().err


def test_the_installed_command_refuses_them_too() -> None:
    for text in NOT_DAYS:
        done = subprocess.run([sys.executable, "-m", "recvault.cli", "reconcile", "--from", text],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert f"argument --from/--since: {text!r} is not a day written YYYY-MM-DD" in done.stderr


@pytest.mark.parametrize("text", NOT_DAYS)
def test_the_operations_routes_refuse_them_naming_the_parameter(text: str) -> None:
    for name in ("from", "to"):
        with pytest.raises(BadQuery) as refused:
            RecordingQuery.parse({name: text})
        assert str(refused.value) == f"{name}: {text!r} is not a day written YYYY-MM-DD"
    with pytest.raises(BadQuery, match="^date: "):
        day_parameter(text, "date")
    assert RecordingQuery.parse({"from": "2026-11-24", "to": "2026-11-30"}).date_to == "2026-11-30"


@pytest.mark.parametrize("text", NOT_DAYS)
def test_the_hold_selector_and_the_scheduled_tasks_refuse_them(text: str) -> None:
    for parts in ({"date_from": text}, {"date_to": text}):
        with pytest.raises(BadSelector, match="is not a day written YYYY-MM-DD"):
            Selector.from_dict(parts)
    with pytest.raises(InvalidSchedule, match="is not a day written YYYY-MM-DD"):
        scheduled_days([text])
    assert scheduled_days(["2026-11-24"]) == ["2026-11-24"]
    assert Selector(date_from="2026-11-01", date_to="2026-11-30").describe() == "2026-11-01..2026-11-30"
