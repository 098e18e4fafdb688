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
from jesus.logic.reflection import (
    OfferedLesson,
    RunFacts,
    check_reflection,
    lessons_prompt,
    reflection_prompt,
    skipped_verdict,
)
from jesus.redaction import Redactor, default_redactor, redact_structure
from jesus.runner import spans
from jesus.runner.artifacts import ArtifactStore, StoredArtifact, put_text, to_json
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
    reflection: bool = False  # AgentRuns ask for it (spec.reflection defaults to Checklist)
    offered_lessons: tuple[OfferedLesson, ...] = ()
    max_tokens: int | None = None
    max_cost_micros: int = 0


# The reflection gets its own time after the run's (which may be spent: a run that timed out reflects too).
REFLECTION_TIMEOUT_SECONDS = 60.0


def task_prompt(task: AgentTask) -> str:
    """The first user message: the instructions, each named input, then the lessons offered."""
    parts = [task.instructions.strip()]
    for name, value in sorted(task.inputs.items()):
        parts.append(f'<input name="{name}">\n{value}\n</input>')
    lessons = lessons_prompt(task.offered_lessons)
    if lessons:
        parts.append(lessons)
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
    redactor = redact or default_redactor()
    _redact_record(record, redactor)
    if store is not None:
        _store_artifacts(store, record, transcript, redactor)
    if task.reflection:
        await _reflect(task, model, transcript, record, store, redactor)
    record.finished_at = format_time(clock())
    record.duration_ms = (time.monotonic() - started) * 1000
    if store is not None:
        _store_record(store, record)
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


def run_facts(task: AgentTask, record: RunRecord) -> RunFacts:
    """What the run did, as the reflection is checked against it (before the reflection's own call)."""
    return RunFacts(
        run_outcome=record.outcome.value,
        model_calls=tuple(str(call["callId"]) for call in record.calls if call.get("callId")),
        tool_calls=tuple(str(call["callId"]) for call in record.tool_calls if call.get("callId")),
        artifacts={a["name"]: a["digest"] for a in record.artifacts if a.get("digest")},
        offered_lessons=tuple(lesson.id for lesson in task.offered_lessons),
        tokens=record.input_tokens + record.output_tokens,
        cost_micros=record.cost_micros,
        max_tokens=task.max_tokens,
        max_cost_micros=task.max_cost_micros,
    )


async def _reflect(
    task: AgentTask,
    model: ModelClient,
    transcript: list[Message],
    record: RunRecord,
    store: ArtifactStore | None,
    redact: Redactor,
) -> None:
    """Ask for the run's reflection (LAW-REFLECT-001), check it, and record the verdict.

    One more call through the same client: metered, and refused by the run's allowance like any other.
    A reflection never changes the run's outcome.
    """
    facts = run_facts(task, record)
    request = ChatRequest(
        messages=(*transcript, Message("user", reflection_prompt(facts))),
        max_tokens=task.max_output_tokens,
        metadata={"run": task.run, "namespace": task.namespace},
    )
    call: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(REFLECTION_TIMEOUT_SECONDS):
            reply = await model.complete(request)
    except ModelCallError as exc:
        verdict = skipped_verdict(f"the reflection call failed: {exc.reason}")
        call = exc.record
    except TimeoutError:
        verdict = skipped_verdict(f"no reflection within {REFLECTION_TIMEOUT_SECONDS:g}s")
    except Exception as exc:  # a reflection never turns a run's record into a traceback
        log.exception("Reflection failed unexpectedly run=%s", task.run)
        verdict = skipped_verdict(f"the reflection call failed: {type(exc).__name__}: {exc}")
    else:
        call = reply.record
        record.calls.append(redact_structure(reply.record, redact))
        verdict = check_reflection(reply.response.content, facts)
    block = verdict.to_dict()
    # The answer is model text: redacted as structure before it is kept anywhere.
    block["reflection"] = redact_structure(block["reflection"], redact)
    block["items"] = redact_structure(block["items"], redact)
    if call is not None and call.get("callId"):
        block["callId"] = call["callId"]
    record.reflection = block
    log.info(
        "Reflected run=%s passed=%s failed=%s", task.run, verdict.passed, ",".join(verdict.failed) or "-"
    )
    if store is not None:
        try:
            stored = put_text(store, "reflection.json", to_json(block))
        except (OSError, ValueError) as exc:
            record.warnings.append(f"the reflection could not be written: {exc}")
        else:
            _list_artifact(record, stored)


def _list_artifact(record: RunRecord, stored: StoredArtifact) -> None:
    record.artifacts = [a for a in record.artifacts if a.get("name") != stored.name]
    record.artifacts.append(stored.to_dict())


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
    except (OSError, ValueError) as exc:
        record.warnings.append(f"artifacts could not be written: {exc}")


def _store_record(store: ArtifactStore, record: RunRecord) -> None:
    """Write `result.json` last: it names the other artifacts, and itself by name only (its digest
    cannot be inside it). The record the runner reports on then lists it in full, so the operator
    can read the record back by its digest."""
    try:
        record.artifacts.append({"name": "result.json"})
        stored = put_text(store, "result.json", to_json(record.to_dict()))
    except (OSError, ValueError) as exc:
        record.warnings.append(f"artifacts could not be written: {exc}")
    else:
        _list_artifact(record, stored)


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
