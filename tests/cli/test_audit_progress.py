"""The progress bar of `recvault audit verify`: drawn on a terminal, silent otherwise."""

from __future__ import annotations

import io

from recvault.commands.audit import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_is_drawn_on_a_terminal_and_ends_with_a_newline() -> None:
    stream = Terminal()
    bar = ProgressBar(stream)
    bar(0, 4, "recordings")
    bar(4, 4, "recordings")  # the last step is always drawn
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\r[") and "4/4 recordings" in text and text.endswith("\n")
    assert "[" + "#" * 30 + "]" in text


def test_nothing_is_written_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar(1, 2, "recordings")
    bar.close()
    assert stream.getvalue() == ""
