"""The agent loop: turns, tools, limits and failures all end in an explained record and artifacts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jesus.api.objects import spec_digest
from jesus.logic.allowance import Allowance, CallPrice
from jesus.logic.routing import RoutePlan
from jesus.router import RoutedAdapter, Router, RunLedger
from jesus.runner import (
    AgentTask,
    DirectoryArtifactStore,
    InProcessModelClient,
    ModelCallError,
    ModelReply,
    RunOutcome,
    ToolServerSpec,
    execute_run,
)
from jesus_adapters.types import ChatRequest, ChatResponse, StreamDone, StreamEvent, ToolCall, Usage

from .conftest import MISBEHAVING_SERVER, workspace_server


def text(content: str, *, tokens: int = 10) -> ChatResponse:
    return ChatResponse(content, (), "stop", Usage(tokens, tokens), "m", "scripted")


def tool_call(name: str, **arguments: Any) -> ChatResponse:
    call = ToolCall(id=f"call-{name}", name=name, arguments=arguments)
    return ChatResponse("", (call,), "tool_calls", Usage(10, 10), "m", "scripted")


class ScriptedModel:
    """A model client answering from a list; records every request it got."""

    def __init__(self, *steps: ChatResponse | ModelCallError) -> None:
        self.steps = list(steps)
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ModelReply:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, ModelCallError):
            raise step
        usage = step.usage
        return ModelReply(step, {"inputTokens": usage.input_tokens, "outputTokens": usage.output_tokens})


def task(*servers: ToolServerSpec, **overrides: Any) -> AgentTask:
    fields: dict[str, Any] = {
        "run": "summarise",
        "namespace": "team-a",
        "instructions": "Summarise the README.",
        "inputs": {"audience": "executives"},
        "tool_servers": servers,
        "spec_digest": spec_digest({"task": "summarise"}),
    } | overrides
    return AgentTask(**fields)


async def test_a_run_calls_a_tool_then_answers_and_stores_artifacts(workspace: Path, tmp_path: Path) -> None:
    model = ScriptedModel(tool_call("read_file", path="README.md"), text("The launch is on Friday."))
    store = DirectoryArtifactStore(tmp_path / "artifacts")
    record = await execute_run(task(workspace_server(workspace, "read_file")), model, store=store)

    assert record.outcome is RunOutcome.SUCCEEDED
    assert record.final_answer == "The launch is on Friday."
    assert record.turns == 2
    assert record.input_tokens == 20
    first_prompt = model.requests[0].messages[1].content
    assert "Summarise the README." in first_prompt
    assert '<input name="audience">\nexecutives' in first_prompt
    assert [t.name for t in model.requests[0].tools] == ["read_file"]
    tool_message = model.requests[1].messages[-1]
    assert tool_message.role == "tool"
    assert "launch is on Friday" in tool_message.content
    assert tool_message.tool_call_id == "call-read_file"

    files = {p.name for p in (tmp_path / "artifacts").iterdir()}
    assert files == {"final-answer.md", "transcript.json", "tool-results.json", "result.json"}
    stored = json.loads((tmp_path / "artifacts" / "result.json").read_text())
    assert stored["outcome"] == "Succeeded"
    assert stored["specDigest"].startswith("sha256:")
    assert stored["toolCalls"][0]["tool"] == "read_file"
    assert {a["name"] for a in stored["artifacts"]} == files
    transcript = json.loads((tmp_path / "artifacts" / "transcript.json").read_text())
    assert [m["role"] for m in transcript] == ["system", "user", "assistant", "tool", "assistant"]


async def test_a_tool_the_run_may_not_use_is_refused_and_recorded(workspace: Path) -> None:
    model = ScriptedModel(tool_call("list_files"), text("done"))
    record = await execute_run(task(workspace_server(workspace, "read_file")), model)
    assert record.outcome is RunOutcome.SUCCEEDED
    assert record.tool_calls[0]["isError"]
    assert "not allowed" in record.tool_calls[0]["result"]
    assert "not allowed" in model.requests[1].messages[-1].content


async def test_a_model_that_never_finishes_stops_at_max_turns() -> None:
    model = ScriptedModel(tool_call("anything"))
    record = await execute_run(task(max_turns=3), model)
    assert record.outcome is RunOutcome.MAX_TURNS_REACHED
    assert record.turns == 3
    assert "3 turns" in record.reason
    assert len(model.requests) == 3


async def test_a_spent_allowance_ends_the_run_as_limit_exceeded() -> None:
    error = ModelCallError("AllowanceExceeded", "token allowance exhausted", record={"callId": "x"})
    record = await execute_run(task(), ScriptedModel(error))
    assert record.outcome is RunOutcome.LIMIT_EXCEEDED
    assert record.reason == "token allowance exhausted"
    assert record.calls == [{"callId": "x"}]


async def test_a_model_failure_ends_the_run_as_model_failed() -> None:
    error = ModelCallError("Overloaded", "every adapter in the chain failed", record=None)
    record = await execute_run(task(), ScriptedModel(error))
    assert record.outcome is RunOutcome.MODEL_FAILED
    assert "every adapter" in record.reason


async def test_a_tool_server_that_will_not_start_ends_the_run_before_any_model_call() -> None:
    server = ToolServerSpec("bad", "stdio", command="python", args=(str(MISBEHAVING_SERVER), "exit-at-start"))
    model = ScriptedModel(text("never"))
    record = await execute_run(task(server), model)
    assert record.outcome is RunOutcome.TOOL_SERVER_FAILED
    assert "'bad' failed to start" in record.reason
    assert not model.requests


async def test_a_tool_server_that_crashes_mid_run_is_explained_to_the_model() -> None:
    server = ToolServerSpec("bad", "stdio", command="python", args=(str(MISBEHAVING_SERVER), "crash-on-call"))
    model = ScriptedModel(tool_call("explode"), text("the tool crashed, so no answer"))
    record = await execute_run(task(server), model)
    assert record.outcome is RunOutcome.SUCCEEDED
    assert record.tool_calls[0]["isError"]
    assert "failed" in model.requests[1].messages[-1].content


async def test_a_run_that_hangs_on_a_tool_times_out() -> None:
    server = ToolServerSpec(
        "bad", "stdio", command="python", args=(str(MISBEHAVING_SERVER), "slow"), timeout_seconds=60
    )
    record = await execute_run(task(server, timeout_seconds=3), ScriptedModel(tool_call("sleep")))
    assert record.outcome is RunOutcome.TIMED_OUT
    assert "timeout of 3s" in record.reason
    assert record.duration_ms < 15_000


async def test_a_bug_in_the_model_client_is_recorded_not_raised() -> None:
    class BrokenModel:
        async def complete(self, request: ChatRequest) -> ModelReply:
            raise KeyError("choices")

    record = await execute_run(task(), BrokenModel())
    assert record.outcome is RunOutcome.FAILED
    assert "KeyError" in record.reason


async def test_redaction_applies_to_every_stored_artifact(tmp_path: Path) -> None:
    model = ScriptedModel(text("the key is sk-secret-123"))
    store = DirectoryArtifactStore(tmp_path)
    await execute_run(task(), model, store=store, redact=lambda s: s.replace("sk-secret-123", "[REDACTED]"))
    for name in ("final-answer.md", "transcript.json", "result.json"):
        content = (tmp_path / name).read_text()
        assert "sk-secret-123" not in content
        assert "[REDACTED]" in content


class ChainAdapter:
    """The smallest real adapter: a fixed answer sequence, for the router-backed run."""

    provider = "scripted"
    model = "chain-model"

    def __init__(self, *answers: ChatResponse) -> None:
        self.answers = list(answers)

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        return self.answers.pop(0)

    async def stream(self, request: ChatRequest, *, timeout_seconds: float) -> AsyncIterator[StreamEvent]:
        yield StreamDone(await self.complete(request, timeout_seconds=timeout_seconds))

    async def aclose(self) -> None:
        await asyncio.sleep(0)


async def test_a_run_through_the_in_process_router_meters_every_call(workspace: Path) -> None:
    adapter = ChainAdapter(tool_call("count_words", path="README.md"), text("It has 8 words.", tokens=100))
    router = Router({"scripted": RoutedAdapter("scripted", adapter, CallPrice(1_000_000, 2_000_000))})
    ledger = RunLedger("summarise", Allowance(max_tokens=10_000, max_cost_micros=1_000_000))
    client = InProcessModelClient(router, RoutePlan(chain=("scripted",)), ledger)
    record = await execute_run(task(workspace_server(workspace)), client)
    assert record.outcome is RunOutcome.SUCCEEDED
    assert [call["adapter"] for call in record.calls] == ["scripted", "scripted"]
    assert record.cost_micros == ledger.spent.cost_micros > 0
    assert record.to_dict()["cost"] == f"0.{record.cost_micros:06d}"
