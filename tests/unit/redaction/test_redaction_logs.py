"""Log lines are redacted when created: message, arguments, tracebacks and stacks, on every handler."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from jesus.redaction import RedactionConfig, install_log_redaction
from jesus.redaction.logs import installed_log_redactor, redact_record, uninstall_log_redaction

KEY = "sk-ant-api03-" + "Q" * 40
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLXZhbHVl"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with its own handler and formatter, created after redaction is installed."""
    install_log_redaction(RedactionConfig().patterns_only().redactor())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("jesus.test.redaction.logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        uninstall_log_redaction()


def test_message_and_arguments_are_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("Model call failed run=%s error=%s", "r1", f"upstream said: invalid key {KEY}")
    logger.warning(f"token {JWT} for ada@example.com")
    text = stream.getvalue()
    assert KEY not in text and JWT not in text and "ada@example.com" not in text
    assert "Model call failed run=r1 error=upstream said: invalid key [REDACTED:anthropic-key]" in text
    assert "[REDACTED:jwt]" in text and "[REDACTED:email]" in text


def test_tracebacks_and_stacks_are_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise ValueError(f"provider echoed {KEY}")
    except ValueError:
        logger.exception("Request failed")
    logger.info("Here", stack_info=True, extra={"unused": KEY})
    text = stream.getvalue()
    assert KEY not in text
    assert "ValueError: provider echoed [REDACTED:anthropic-key]" in text
    assert "Stack (most recent call last)" in text


def test_a_bad_format_is_left_for_logging_to_report() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d items", ("many",), None)
    assert redact_record(record, str.upper) is record
    assert record.msg == "%d items" and record.args == ("many",)


def test_installing_twice_redacts_once_and_uninstall_restores() -> None:
    original = logging.getLogRecordFactory()
    calls: list[str] = []

    def counting(text: str) -> str:
        calls.append(text)
        return text.replace("secret", "[gone]")

    install_log_redaction(str.upper)
    install_log_redaction(counting)
    try:
        assert installed_log_redactor() is counting
        record = logging.getLogger("jesus.test.twice").makeRecord(
            "jesus.test.twice", logging.INFO, __file__, 1, "a %s", ("secret",), None
        )
        assert record.getMessage() == "a [gone]"
        assert calls == ["a secret"]
    finally:
        uninstall_log_redaction()
    assert logging.getLogRecordFactory() is original
    assert installed_log_redactor() is None


def test_a_json_formatter_never_sees_the_raw_exception() -> None:
    # JSON formatters (python-json-logger, behind Kopf's --log-format=json) format `record.exc_info`
    # themselves when it is set, not the redacted `exc_text`.
    from pythonjsonlogger.json import JsonFormatter

    install_log_redaction(RedactionConfig().patterns_only().redactor())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("jesus.test.redaction.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError(f"provider echoed {KEY}")
        except ValueError:
            logger.error("Request failed", exc_info=True)
    finally:
        logger.removeHandler(handler)
        uninstall_log_redaction()
    line = json.loads(stream.getvalue())
    assert KEY not in stream.getvalue()
    assert "ValueError: provider echoed [REDACTED:anthropic-key]" in line["exc_info"]
