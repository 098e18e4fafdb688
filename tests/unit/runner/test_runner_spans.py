"""The runner's spans: its place in the run's trace from TRACEPARENT (hostile values start a new trace),
the run, each turn and each tool call, with no prompt, argument or result in any attribute."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from jesus.redaction import RedactionConfig, install_log_redaction
from jesus.redaction.logs import uninstall_log_redaction
from jesus.runner import ToolServerSpec, execute_run, spans
from jesus.runner.tools import ToolBox, ToolServerError
from jesus.telemetry import log_fields

from .conftest import workspace_server
from .test_runner_loop import ScriptedModel, task, text, tool_call

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(spans, "tracer", provider.get_tracer("test"))
    return exporter


def test_traceparent_names_the_parent() -> None:
    context = spans.parent_context({"TRACEPARENT": f"00-{TRACE}-{PARENT}-01"})
    assert spans.trace_id_of(context) == TRACE


@pytest.mark.parametrize(
    "value",
    [
        "00-zz-00f067aa0ba902b7-01",  # careless: not hex
        f"00-{'0' * 32}-{PARENT}-01",  # an all-zero trace id is invalid
        f"00-{TRACE}-{PARENT}-01\nX-Injected: yes",  # hostile: a second header line
        "x" * 10_000,  # hostile: huge
    ],
)
def test_a_malformed_traceparent_starts_a_new_trace_and_is_logged_safely(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=spans.log.name):
        context = spans.parent_context({"TRACEPARENT": value})
    assert spans.trace_id_of(context) is None
    (record,) = [r for r in caplog.records if r.name == spans.log.name]
    assert record.getMessage().startswith("Ignored malformed TRACEPARENT value=")
    assert "\n" not in record.getMessage()
    assert len(record.getMessage()) < 200


def test_no_traceparent_is_a_new_trace_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert spans.trace_id_of(spans.parent_context({})) is None
    assert not caplog.records


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


async def test_a_run_has_its_span_a_span_per_turn_and_per_tool_call(
    exported: InMemorySpanExporter, workspace: Path, tmp_path: Path
) -> None:
    secret = "sk-live-4f9a8b7c6d5e4f3a2b1c"
    model = ScriptedModel(tool_call("read_file", path="README.md"), text(f"done {secret}"))
    parent = spans.parent_context({"TRACEPARENT": f"00-{TRACE}-{PARENT}-01"})
    run_span = spans.start_run_span("summarise", "team-a", 1, parent)
    with trace.use_span(run_span, end_on_exit=False):
        record = await execute_run(task(workspace_server(workspace), instructions=f"use {secret}"), model)
    spans.end_run_span(run_span, record.outcome.value, record.outcome.succeeded, record.turns)
    assert record.outcome.value == "Succeeded"
    finished = exported.get_finished_spans()
    named = by_name(exported)
    run = named["invoke_agent summarise"]
    assert run.parent is not None and format(run.parent.span_id, "016x") == PARENT
    assert format(run.context.trace_id, "032x") == TRACE
    assert dict(run.attributes or {})["jesus.attempt"] == 1
    turns = sorted((s for s in finished if s.name == "turn"), key=lambda s: s.start_time or 0)
    assert [dict(s.attributes or {})["jesus.turn"] for s in turns] == [1, 2]
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in turns)
    tool = named["execute_tool read_file"]
    assert tool.parent is not None and tool.parent.span_id == turns[0].context.span_id
    attributes = dict(tool.attributes or {})
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["gen_ai.tool.name"] == "read_file"
    assert attributes["gen_ai.tool.call.id"] == "call-read_file"
    assert tool.status.status_code is not StatusCode.ERROR
    for span in finished:
        assert not any(secret in str(v) for v in (span.attributes or {}).values()), span.name
        assert not any("README" in str(v) for v in (span.attributes or {}).values()), span.name


async def test_a_tool_the_run_may_not_call_is_an_error_span_without_the_models_name(
    exported: InMemorySpanExporter, workspace: Path
) -> None:
    hostile = "rm -rf / # sk-live-4f9a8b7c6d5e4f3a2b1c"
    model = ScriptedModel(tool_call(hostile), text("done"))
    await execute_run(task(workspace_server(workspace, "read_file")), model)
    (tool,) = [s for s in exported.get_finished_spans() if s.name.startswith("execute_tool")]
    assert tool.name == "execute_tool"
    assert tool.status.status_code is StatusCode.ERROR
    attributes = dict(tool.attributes or {})
    assert attributes["error.type"] == "tool_not_allowed"
    assert "gen_ai.tool.name" not in attributes
    assert "gen_ai.tool.call.id" not in attributes  # the id carried the hostile name and spaces


async def test_a_tool_servers_stderr_becomes_redacted_log_lines_of_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Careless server: it writes a key to stderr and dies at start. Its line is a log record of the
    runner's, carrying the run's fields, redacted; nothing raw reaches the runner's stderr."""
    key = "sk-ant-api03-" + "Q" * 40
    script = f"import sys; sys.stderr.write('warming up with key {key}\\n'); sys.exit(3)"
    server = ToolServerSpec("noisy", "stdio", command=sys.executable, args=("-c", script))
    install_log_redaction(RedactionConfig().patterns_only().redactor())
    try:
        with (
            caplog.at_level(logging.INFO, logger="jesus.runner.toolserver"),
            log_fields(run="r1"),
            pytest.raises(ToolServerError),
        ):
            async with ToolBox((server,), connect_timeout_seconds=10):
                pass
    finally:
        uninstall_log_redaction()
    (line,) = [r for r in caplog.records if r.name == "jesus.runner.toolserver"]
    assert line.getMessage().startswith("Tool server wrote server=noisy line=warming up with key ")
    assert key not in line.getMessage()
