"""The agent loop of one run: ask the model, run the tools it calls, until it answers or a limit hits.

`execute_run` never raises for anything a run can run into (a model that fails, a tool server that
crashes, a timeout, a bug in a tool): it ends in a `RunRecord` whose outcome and reason explain it,
and it writes the artifacts (final answer, transcript, tool results, the record) in every case.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from jesus.logic.clock import Clock, format_time, system_clock
from jesus.redaction import Redactor, default_redactor, redact_structure
from jesus.runner import spans
from jesus.runner.artifacts import ArtifactStore, put_text, to_json
from jesus.runner.model import ModelCallError, ModelClient
from jesus.runner.record import RunOutcome, RunRecord
from jesus.runner.tools import ToolBox, ToolServerError, ToolServerSpec
from jesus_adapters.types import ChatRequest, Message

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are an agent carrying out one task for a platform team. Use the tools you are given when they "
    "help; when the task is done, answer with the final result and call no more tools."
)


@dataclass(frozen=True, slots=True)
class AgentTask:
    """What the runner needs from an AgentRun: the task, its tools and its limits."""

    run: str
    namespace: str
    instructions: str
    inputs: dict[str, str] = field(default_factory=dict)
    tool_servers: tuple[ToolServerSpec, ...] = ()
    max_turns: int = 20
    timeout_seconds: float = 600.0
    max_output_tokens: int = 4096
    spec_digest: str | None = None


def task_prompt(task: AgentTask) -> str:
    """The first user message: the instructions, then each named input."""
    parts = [task.instructions.strip()]
    for name, value in sorted(task.inputs.items()):
        parts.append(f'<input name="{name}">\n{value}\n</input>')
    return "\n\n".join(parts)


async def execute_run(
    task: AgentTask,
    model: ModelClient,
    *,
    store: ArtifactStore | None = None,
    dry_run: bool = False,
    connect_timeout_seconds: float = 20.0,
    redact: Redactor | None = None,
    record: RunRecord | None = None,
    clock: Clock = system_clock,
) -> RunRecord:
    """Run the agent loop for `task` and return its record (also stored as `result.json`).

    `redact` (default: the process's `default_redactor`) is applied to every string of the record and of
    each artifact before it is serialized, stored or returned, so credentials and personal data a model
    or tool let slip go nowhere. `record`
    may carry what admission already wrote (policy decision, budgets, warnings); it is filled in place.
    `clock` gives the record's start and finish times.
    """
    if record is None:
        record = RunRecord(run=task.run, namespace=task.namespace)
    record.spec_digest = task.spec_digest
    record.dry_run = dry_run
    record.started_at = format_time(clock())
    started = time.monotonic()
    transcript: list[Message] = [Message("system", SYSTEM_PROMPT), Message("user", task_prompt(task))]
    toolbox = ToolBox(task.tool_servers, connect_timeout_seconds=connect_timeout_seconds)
    log.info("Started run run=%s namespace=%s dry_run=%s", task.run, task.namespace, dry_run)
    try:
        async with asyncio.timeout(task.timeout_seconds):
            async with toolbox:
                await _loop(task, model, toolbox, transcript, record)
    except TimeoutError:
        record.outcome = RunOutcome.TIMED_OUT
        record.reason = f"the run did not finish within its timeout of {task.timeout_seconds:g}s"
    except ToolServerError as exc:
        record.outcome = RunOutcome.TOOL_SERVER_FAILED
        record.reason = str(exc)
    except Exception as exc:  # the record must explain any failure, including a bug
        log.exception("Run failed unexpectedly run=%s", task.run)
        record.outcome = RunOutcome.FAILED
        record.reason = f"{type(exc).__name__}: {exc}"
    record.tool_calls = [call.to_dict() for call in toolbox.calls]
    record.finished_at = format_time(clock())
    record.duration_ms = (time.monotonic() - started) * 1000
    redactor = redact or default_redactor()
    _redact_record(record, redactor)
    if store is not None:
        _store_artifacts(store, record, transcript, redactor)
    log.info(
        "Finished run run=%s outcome=%s turns=%d cost_micros=%d",
        task.run,
        record.outcome.value,
        record.turns,
        record.cost_micros,
    )
    return record


async def _loop(
    task: AgentTask, model: ModelClient, tools: ToolBox, transcript: list[Message], record: RunRecord
) -> None:
    for turn in range(1, task.max_turns + 1):
        record.turns = turn
        # The turn's span is current while it runs: the model call carries it to the router, and the
        # tool calls are its children.
        with spans.tracer.start_as_current_span("turn", attributes={"jesus.turn": turn}):
            if await _turn(task, model, tools, transcript, record):
                return
    record.outcome = RunOutcome.MAX_TURNS_REACHED
    record.reason = f"no final answer after {task.max_turns} turns (maxTurns)"


async def _turn(
    task: AgentTask, model: ModelClient, tools: ToolBox, transcript: list[Message], record: RunRecord
) -> bool:
    """One turn: ask the model, run the tools it calls; True when the run is over."""
    request = ChatRequest(
        messages=tuple(transcript),
        tools=tools.specs,
        max_tokens=task.max_output_tokens,
        metadata={"run": task.run, "namespace": task.namespace},
    )
    try:
        reply = await model.complete(request)
    except ModelCallError as exc:
        if exc.record is not None:
            record.calls.append(exc.record)
        record.outcome = RunOutcome(exc.run_outcome)
        record.reason = exc.reason
        return True
    record.calls.append(reply.record)
    answer = reply.response
    transcript.append(Message("assistant", answer.content, answer.tool_calls))
    if answer.finish_reason == "content_filter":
        record.outcome = RunOutcome.FAILED
        record.reason = "the model's answer was stopped by its content filter"
        return True
    if not answer.tool_calls:
        record.final_answer = answer.content
        record.outcome = RunOutcome.SUCCEEDED
        record.reason = "the model gave its final answer"
        if answer.finish_reason == "length":
            record.warnings.append("the final answer was cut off at the output token limit")
        return True
    for call in answer.tool_calls:
        result = await tools.call(call.id, call.name, call.arguments)
        transcript.append(Message("tool", result.text, tool_call_id=call.id))
    return False


def _store_artifacts(
    store: ArtifactStore, record: RunRecord, transcript: list[Message], redact: Redactor
) -> None:
    """Write the artifacts; `record` is redacted already, the transcript is redacted here, as structure."""
    try:
        stored = []
        if record.final_answer is not None:
            stored.append(put_text(store, "final-answer.md", record.final_answer))
        messages = redact_structure([_message_dict(m) for m in transcript], redact)
        stored.append(put_text(store, "transcript.json", to_json(messages)))
        stored.append(put_text(store, "tool-results.json", to_json(record.tool_calls)))
        record.artifacts = [artifact.to_dict() for artifact in stored]
        # The record names the other artifacts; it is written last and lists itself by name only.
        record.artifacts.append({"name": "result.json"})
        put_text(store, "result.json", to_json(record.to_dict()))
    except (OSError, ValueError) as exc:
        record.warnings.append(f"artifacts could not be written: {exc}")


def _redact_record(record: RunRecord, redact: Redactor) -> None:
    """Redact every string a model, tool, provider or spec could have put in the record, in place.

    Each field is redacted as the structure it is, never as serialized JSON (ADR 12); what the
    platform itself established (run name, digests, timings, artifact references) is left alone.
    """
    if record.final_answer is not None:
        record.final_answer = redact(record.final_answer)
    record.reason = redact(record.reason)
    record.tool_calls = redact_structure(record.tool_calls, redact)
    record.calls = redact_structure(record.calls, redact)
    record.warnings = redact_structure(record.warnings, redact)
    if record.policy is not None:
        record.policy = redact_structure(record.policy, redact)
    record.budgets = redact_structure(record.budgets, redact)


def _message_dict(message: Message) -> dict[str, Any]:
    entry: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        entry["toolCalls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        entry["toolCallId"] = message.tool_call_id
    return entry
