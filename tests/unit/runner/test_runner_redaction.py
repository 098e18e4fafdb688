"""The runner redacts what a run leaves behind, as structure (jesus.redaction), whatever sits where."""

from __future__ import annotations

import json
from pathlib import Path

from jesus.runner import AgentTask, DirectoryArtifactStore, ModelReply, execute_run
from jesus_adapters.types import ChatRequest, ChatResponse, ToolCall, Usage


def _contents(folder: Path) -> list[str]:
    return [artifact.read_text() for artifact in folder.iterdir()]


class LeakyModel:
    """Answers with a key in its text."""

    async def complete(self, request: ChatRequest) -> ModelReply:
        answer = ChatResponse(
            "the key is sk-abcdefghijklmnopqrstuvwxyz0123", (), "stop", Usage(1, 1), "m", "scripted"
        )
        return ModelReply(answer, {"inputTokens": 1, "outputTokens": 1})


async def test_a_run_redacts_its_record_and_artifacts_by_default(tmp_path: Path) -> None:
    record = await execute_run(
        AgentTask(run="r", namespace="n", instructions="Mail ada@example.com the key."),
        LeakyModel(),
        store=DirectoryArtifactStore(tmp_path),
    )
    assert record.final_answer == "the key is [REDACTED:openai-key]"
    for content in _contents(tmp_path):
        assert "sk-abcdefghijklmnopqrstuvwxyz0123" not in content
        assert "ada@example.com" not in content
    transcript = json.loads((tmp_path / "transcript.json").read_text())
    assert "[REDACTED:email]" in transcript[1]["content"]


KEY = "sk-proj-abcdefghijklmnopqrstuvwx1234"
EMAIL = "ada.lovelace@example.com"
# What crashed `jesus run` when redaction ran over serialized JSON: a key right after a line break (its
# `\\n` left no word boundary) and an e-mail at a line start (the match swallowed the `n` of `\\n`).
LEAKY_TEXT = f"first line\n{KEY}\n{EMAIL} wrote this\n"


class LineStartModel:
    """Calls a tool with a leaky argument first, then answers with the same text."""

    def __init__(self) -> None:
        self.turn = 0

    async def complete(self, request: ChatRequest) -> ModelReply:
        self.turn += 1
        calls = (ToolCall("c1", "lookup", {"query": LEAKY_TEXT, LEAKY_TEXT: 1}),) if self.turn == 1 else ()
        answer = ChatResponse(LEAKY_TEXT, calls, "tool_calls" if calls else "stop", Usage(1, 1), "m", "s")
        return ModelReply(answer, {"inputTokens": 1, "outputTokens": 1, "error": f"upstream said\n{EMAIL}"})


async def test_line_start_secrets_leave_valid_json_and_no_secret(tmp_path: Path) -> None:
    record = await execute_run(
        AgentTask(run="r", namespace="n", instructions=LEAKY_TEXT),
        LineStartModel(),
        store=DirectoryArtifactStore(tmp_path),
    )
    for name in ("transcript.json", "result.json", "tool-results.json"):
        text = (tmp_path / name).read_text()
        json.loads(text)
        assert KEY not in text, name
        assert EMAIL not in text, name
    assert record.final_answer == "first line\n[REDACTED:openai-key]\n[REDACTED:email] wrote this\n"
    assert EMAIL not in json.dumps(record.to_dict())
    transcript = json.loads((tmp_path / "transcript.json").read_text())
    assert transcript[1]["content"].startswith("first line\n[REDACTED:openai-key]\n[REDACTED:email]")
