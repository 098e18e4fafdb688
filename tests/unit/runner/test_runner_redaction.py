"""Redaction of credentials and contact details in what a run leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jesus.runner import AgentTask, DirectoryArtifactStore, ModelReply, execute_run
from jesus.runner.redaction import chain, redact_secrets
from jesus_adapters.types import ChatRequest, ChatResponse, Usage

KEY_BLOCK = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "kind", "kept"),
    [
        ("key sk-proj-abcdefghijklmnopqrstuvwx1234 here", "openai-key", "key "),
        ("use sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "anthropic-key", "use "),
        ("AKIAIOSFODNN7EXAMPLE is the id", "aws-access-key", " is the id"),
        ("token ghp_" + "a" * 36, "github-token", "token "),
        ("xoxb-1234567890-abcdefghij", "slack-token", ""),
        ("AIza" + "B" * 35, "google-api-key", ""),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijklmnop", "jwt", "jwt "),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123", "bearer-token", "Authorization: Bearer "),
        (f"before\n{KEY_BLOCK}\nafter", "private-key", "after"),
        ("write to ada.lovelace@example.com today", "email", "today"),
    ],
)
def test_secrets_are_replaced_by_a_marker(text: str, kind: str, kept: str) -> None:
    redacted = redact_secrets(text)
    assert f"[REDACTED:{kind}]" in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    ["plain prose with no secrets", "sk-short", "the task costs 3.00 USD", "path/to/file.py:12", "a@b"],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_secrets(text) == text


def test_chain_applies_redactors_in_order() -> None:
    redact = chain([str.upper, lambda s: s.replace("A", "4")])
    assert redact("abc") == "4BC"


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
