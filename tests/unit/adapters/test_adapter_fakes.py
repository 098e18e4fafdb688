"""The fake providers refuse what the real ones refuse, so translation bugs cannot pass unseen."""

from __future__ import annotations

from typing import Any

import pytest
from tests.builders.adapters import adapter_config
from tests.builders.chat import chat_request
from tests.providers import Reply, serve_anthropic, serve_openai
from tests.providers.calls import failure_of
from tests.providers.request_rules import chat_completions_problem, messages_problem

from jesus_adapters import ErrorKind, Message, ToolCall, build_adapter

CALL = ToolCall(id="call_1", name="lookup", arguments={"word": "haiku"})
ORPHAN_RESULT = chat_request(Message("user", "hi"), Message("tool", "a result", tool_call_id="call_unknown"))
UNANSWERED_CALL = chat_request(
    Message("user", "hi"), Message("assistant", "", tool_calls=(CALL,)), Message("user", "and now?")
)


@pytest.mark.parametrize(
    "request_", [ORPHAN_RESULT, UNANSWERED_CALL], ids=["orphan-result", "unanswered-call"]
)
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_broken_tool_conversation_gets_the_providers_400(provider: str, request_: Any) -> None:
    serve = serve_openai() if provider == "openai" else serve_anthropic()
    async with serve as fake:
        fake.script(Reply(text="should not be reached"))
        adapter = build_adapter(adapter_config(provider, fake.base_url))
        error = await failure_of(adapter, request_)
        await adapter.aclose()

    assert error.kind is ErrorKind.INVALID_REQUEST
    assert error.status_code == 400
    assert "tool" in error.message
    assert fake.pending == 1  # a refused request takes no scripted behaviour


async def test_strict_checking_can_be_turned_off() -> None:
    async with serve_openai(strict=False) as fake:
        fake.script(Reply(text="accepted"))
        adapter = build_adapter(adapter_config("openai", fake.base_url))
        response = await adapter.complete(ORPHAN_RESULT, timeout_seconds=5)
        await adapter.aclose()

    assert response.content == "accepted"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, None),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "m", "messages": []}, "non-empty"),
        ({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"model": "m", "messages": [{"role": "assistant", "content": None}]}, "content or tool_calls"),
        (
            {
                "model": "m",
                "messages": [
                    {"role": "assistant", "content": None, "tool_calls": [{"id": "a"}, {"id": "b"}]},
                    {"role": "tool", "tool_call_id": "a", "content": "1"},
                ],
            },
            "without response",
        ),
    ],
)
def test_chat_completions_rules(body: dict[str, Any], problem: str | None) -> None:
    found = chat_completions_problem(body)

    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}, None),
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "hi"}]}, "role"),
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": []}]}, "non-empty"),
        (
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
                    },
                ],
            },
            None,
        ),
    ],
)
def test_messages_rules(body: dict[str, Any], problem: str | None) -> None:
    found = messages_problem(body)

    assert (found is None) if problem is None else (found is not None and problem in found)
