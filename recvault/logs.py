"""Structured logging: one JSON object per line, or one line for people, with recording_sid and task_id when known."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

# LogRecord attributes that are plumbing, not context worth emitting.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Context a text line shows first, in this order (what a reader searches for); the rest follow as logged.
LEADING_FIELDS = ("recording_sid", "key", "task_id")
# A text value shown as it is; anything else (spaces, quotes, '=', empty) is shown as a JSON string.
_BARE = re.compile(r"[^\s\"'=]+")


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, in the order they were given."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    """Render a record and its `extra=` fields as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(extra_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value …`: the message, then its `extra=` fields (recording_sid, key
    and task_id first), so a line read on a terminal says which recording and object it is about."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        # An extra that only repeats the message's arguments (Celery passes its context as both) is left out.
        fields = {key: value for key, value in extra_fields(record).items()
                  if not (record.args and (value is record.args or value == record.args))}
        order = sorted(fields, key=lambda key: LEADING_FIELDS.index(key) if key in LEADING_FIELDS
                       else len(LEADING_FIELDS))
        if order:
            line += " " + " ".join(f"{key}={text_value(fields[key])}" for key in order)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def text_value(value: object) -> str:
    """A field's value on a text line: bare when it can be, else JSON (quoted strings, lists, objects)."""
    if isinstance(value, str) and _BARE.fullmatch(value):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route every logger to stderr in the chosen format; safe to call more than once.

    `auto` writes lines for people on a terminal and JSON lines anywhere else (files, pipes,
    log collectors)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The access log would repeat every callback at INFO; recvault logs its own outcome.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
