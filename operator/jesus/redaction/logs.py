"""Redaction of log lines: every record a process creates, whichever logger, handler or formatter.

`install_log_redaction` replaces the logging module's record factory, so a record is redacted once, when
it is created: its message is rendered with its arguments and redacted, and a traceback or stack it
carries is formatted and redacted too. Handlers and formatters configured later (uvicorn's, Kopf's,
a library's) then only ever see redacted text; a filter on the root logger's handlers would miss them.
Records are created only for levels a logger has enabled, so what is not logged costs nothing.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from jesus.redaction.structure import Redactor


def redact_record(record: logging.LogRecord, redact: Redactor) -> logging.LogRecord:
    """`record` with its message, traceback and stack redacted (in place), arguments merged in; the
    exception itself is dropped once its traceback is written. Attributes passed as `extra` are set after
    the record is created, so they are not redacted: pass no text that may hold secrets there.

    A message whose arguments do not fit its format is left for logging to report, as it would.
    """
    try:
        message = record.getMessage()
    except Exception:  # logging's own handler reports a bad format; redaction must not hide it
        return record
    record.msg, record.args = redact(message), ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        # Formatters reuse `exc_text` when set: the traceback is formatted here once, redacted. The raw
        # exception goes: JSON formatters (python-json-logger, Kopf's) format `exc_info` when it is set.
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class _RedactingFactory:
    """A record factory that redacts what the factory it wraps creates."""

    def __init__(self, base: Callable[..., logging.LogRecord], redact: Redactor) -> None:
        self.base = base
        self.redact = redact

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(self.base(*args, **kwargs), self.redact)


def install_log_redaction(redact: Redactor) -> None:
    """Redact every log record this process creates from now on (idempotent: a second call replaces
    the redactor rather than redacting twice)."""
    current = logging.getLogRecordFactory()
    base = current.base if isinstance(current, _RedactingFactory) else current
    logging.setLogRecordFactory(_RedactingFactory(base, redact))


def uninstall_log_redaction() -> None:
    """Restore the record factory `install_log_redaction` replaced (for tests)."""
    current = logging.getLogRecordFactory()
    if isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(current.base)


def installed_log_redactor() -> Redactor | None:
    """The redactor log records go through, or None when none is installed."""
    current = logging.getLogRecordFactory()
    return current.redact if isinstance(current, _RedactingFactory) else None
