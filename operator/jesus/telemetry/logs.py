"""Log lines of one schema for the operator, the router and the runner: JSON, or text on a terminal.

Every line has the fields of `LOG_SCHEMA`, null when unknown: `time` (UTC, ISO 8601 with
milliseconds), `level`, `message`, `logger`, `trace_id` and `span_id` (the current span's, else the trace
the line concerns, as `log_fields` set it), and `namespace`, `run`, `attempt`, `adapter` (from
`log_fields`). A line with an exception adds `exception`, one with a stack adds `stack`.

The message is the one the redacting record factory made (`jesus.redaction.logs`): redaction happens
when a record is created, so this formatter only ever sees redacted text. Attributes passed as `extra`
are not redacted, so none is written: a line's fields come from `log_fields`, which the programs fill
with names and ids they established themselves, never with model or tool text.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

LOG_SCHEMA = (
    "time",
    "level",
    "message",
    "logger",
    "trace_id",
    "span_id",
    "namespace",
    "run",
    "attempt",
    "adapter",
)
CONTEXT_FIELDS = ("trace_id", "namespace", "run", "attempt", "adapter")
FORMAT_VARIABLE = "JESUS_LOG_FORMAT"

FieldValue = str | int
_NO_FIELDS: Mapping[str, FieldValue] = MappingProxyType({})
_fields: ContextVar[Mapping[str, FieldValue]] = ContextVar("jesus_log_fields", default=_NO_FIELDS)


def _checked(fields: Mapping[str, FieldValue | None]) -> dict[str, FieldValue]:
    unknown = sorted(set(fields) - set(CONTEXT_FIELDS))
    if unknown:
        raise ValueError(f"log fields {unknown} are not in the schema (known: {', '.join(CONTEXT_FIELDS)})")
    return {key: value for key, value in fields.items() if value is not None and value != ""}


@contextmanager
def log_fields(**fields: FieldValue | None) -> Iterator[None]:
    """Lines logged in this block (this task and the tasks it starts) carry `fields`."""
    token = _fields.set({**_fields.get(), **_checked(fields)})
    try:
        yield
    finally:
        _fields.reset(token)


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The schema's fields of `record`, null where unknown."""
    fields: dict[str, Any] = dict.fromkeys(LOG_SCHEMA)
    fields.update(_fields.get())
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"] = format(span.trace_id, "032x")
        fields["span_id"] = format(span.span_id, "016x")
    fields["time"] = _time(record)
    fields["level"] = record.levelname
    fields["message"] = record.getMessage()
    fields["logger"] = record.name
    return fields


class JsonLogFormatter(JsonFormatter):
    """One JSON object a line, of `LOG_SCHEMA` (python-json-logger does the encoding and escaping)."""

    def __init__(self) -> None:
        # ASCII only: a raw U+2028 or U+0085 is valid JSON but splits the line for line-based readers.
        super().__init__(json_ensure_ascii=True)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data.update(record_fields(record))
        if message_dict.get("exc_info"):
            log_data["exception"] = message_dict["exc_info"]
        if message_dict.get("stack_info"):
            log_data["stack"] = message_dict["stack_info"]


class TextLogFormatter(logging.Formatter):
    """The same fields for a person at a terminal: time, level, logger, message, then the known fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        known = " ".join(
            f"{key}={fields[key]}"
            for key in ("namespace", "run", "attempt", "adapter", "trace_id")
            if fields[key] is not None
        )
        line = f"{fields['time']} {fields['level']:<7} {fields['logger']}: {fields['message']}"
        line = f"{line}  [{known}]" if known else line
        if record.exc_text or record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info or (None, None, None)))
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def wants_json(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """JSON unless $JESUS_LOG_FORMAT says text or, unset, the stream is a terminal."""
    chosen = environ.get(FORMAT_VARIABLE, "").strip().lower()
    if chosen in ("json", "text"):
        return chosen == "json"
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: machines read it
        return True


def configure_logging(
    level: int = logging.INFO,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Send every logger's lines to `stream` (default stderr) in the schema; returns the handler.

    Replaces the root logger's handlers, so a later `logging.basicConfig` does nothing.
    """
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    json_lines = wants_json(stream, os.environ if environ is None else environ)
    handler.setFormatter(JsonLogFormatter() if json_lines else TextLogFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
