"""Test-object builders for adapter requests and configs."""

from __future__ import annotations

from typing import Any

from jesus_adapters import AdapterConfig, ChatRequest, Message, Price, ToolCall, ToolSpec

LOOKUP_TOOL = ToolSpec(
    name="lookup",
    description="Look a word up in the dictionary",
    input_schema={"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
)


def chat_request(
    *messages: Message,
    tools: tuple[ToolSpec, ...] = (),
    max_tokens: int = 256,
    stop: tuple[str, ...] = (),
) -> ChatRequest:
    """A request; with no messages, a system prompt and one user question."""
    chosen = messages or (Message("system", "Answer briefly."), Message("user", "What is a haiku?"))
    return ChatRequest(messages=chosen, tools=tools, max_tokens=max_tokens, stop=stop)


def tool_round_trip_request() -> ChatRequest:
    """A conversation that already went through one tool call and its result."""
    call = ToolCall(id="call_lookup_1", name="lookup", arguments={"word": "haiku"})
    return chat_request(
        Message("system", "Use the tools."),
        Message("user", "Define haiku."),
        Message("assistant", "Let me look that up.", tool_calls=(call,)),
        Message("tool", "a short Japanese poem", tool_call_id=call.id),
        tools=(LOOKUP_TOOL,),
    )


def adapter_config(provider: str, base_url: str | None, **overrides: Any) -> AdapterConfig:
    """A config for `provider` at `base_url`, with a test key and a model name."""
    fields: dict[str, Any] = {
        "provider": provider,
        "model": "test-model",
        "base_url": base_url,
        "api_key": "sk-test",
        "price": Price(input_micros_per_mtok=3_000_000, output_micros_per_mtok=15_000_000),
    }
    fields.update(overrides)
    return AdapterConfig(**fields)
