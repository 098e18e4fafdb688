"""Log lines of one schema: JSON (or text on a terminal), the run's fields and trace, redaction kept."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from jesus.redaction import RedactionConfig, install_log_redaction
from jesus.redaction.logs import uninstall_log_redaction
from jesus.telemetry import LOG_SCHEMA, JsonLogFormatter, TextLogFormatter, log_fields
from jesus.telemetry.logs import configure_logging, wants_json

KEY = "sk-ant-api03-" + "Q" * 40


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines to a buffer, redaction installed as the programs install it."""
    install_log_redaction(RedactionConfig().patterns_only().redactor())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("jesus.test.telemetry")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        uninstall_log_redaction()


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_has_every_field_of_the_schema(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    logger.info("Started run run=%s", "r1")
    (line,) = parsed(stream)
    assert tuple(line) == LOG_SCHEMA
    assert (line["level"], line["message"], line["logger"]) == ("INFO", "Started run run=r1", logger.name)
    assert line["time"].endswith("Z")
    assert line["trace_id"] is None and line["run"] is None


def test_fields_of_the_blocks_are_on_the_line(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    with log_fields(namespace="team", run="r1", attempt=2):
        with log_fields(adapter="backup", trace_id="4bf92f3577b34da6a3ce929d0e0e4736"):
            logger.info("Inside")
        logger.info("Outside")
    inside, outside = parsed(stream)
    assert (inside["namespace"], inside["run"], inside["attempt"]) == ("team", "r1", 2)
    assert inside["adapter"] == "backup"
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert outside["adapter"] is None and outside["trace_id"] is None and outside["run"] == "r1"


def test_the_current_span_gives_the_trace_and_span_ids(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logger.info("In a span")
    (line,) = parsed(stream)
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")


def test_json_breaking_characters_stay_inside_one_line(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    hostile = 'a"b\\c\nd\re\x00f\u2028g}{'
    with log_fields(run=hostile, adapter=hostile):
        logger.warning("Refused %s", hostile)
    (line,) = parsed(stream)  # one physical line, and it parses
    assert hostile in line["message"]
    assert line["run"] == hostile


def test_secrets_are_redacted_in_message_and_traceback(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    logger.info("Model call failed error=%s", f"invalid key {KEY}")
    try:
        raise ValueError(f"bad key {KEY}")
    except ValueError:
        logger.exception("Call crashed")
    first, second = parsed(stream)
    assert KEY not in stream.getvalue()
    assert "invalid key" in first["message"]
    assert "ValueError" in second["exception"]


def test_unknown_fields_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"\['prompt'\] are not in the schema"), log_fields(prompt="hi"):  # type: ignore[arg-type]
        pass


def test_a_terminal_gets_text_and_a_pipe_json() -> None:
    assert wants_json(io.StringIO(), {}) is True
    assert wants_json(Terminal(), {}) is False
    assert wants_json(Terminal(), {"JESUS_LOG_FORMAT": "json"}) is True
    assert wants_json(io.StringIO(), {"JESUS_LOG_FORMAT": "text"}) is False
    assert wants_json(io.StringIO(), {"JESUS_LOG_FORMAT": "yaml"}) is True  # careless: the default


def test_text_lines_carry_the_same_fields_redacted() -> None:
    install_log_redaction(RedactionConfig().patterns_only().redactor())
    stream = Terminal()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        handler = configure_logging(logging.INFO, stream=stream, environ={})
        assert isinstance(handler.formatter, TextLogFormatter)
        with log_fields(run="r1", namespace="team"):
            logging.getLogger("jesus.test").info("Used key=%s", KEY)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        uninstall_log_redaction()
    text = stream.getvalue()
    assert "INFO    jesus.test: Used key=" in text
    assert "namespace=team run=r1" in text
    assert KEY not in text
