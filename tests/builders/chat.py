"""Chat requests and replies of the adapter protocol, and adapter errors, as router and adapters see them."""

from __future__ import annotations

from jesus_adapters import ChatRequest, ChatResponse, Message, ToolCall, ToolSpec, Usage
from jesus_adapters.errors import AdapterError, ErrorKind

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


def reply(text: str = "hello there", *, input_tokens: int = 10, output_tokens: int = 5) -> ChatResponse:
    """A plain text answer with the given usage."""
    return ChatResponse(
        content=text,
        tool_calls=(),
        finish_reason="stop",
        usage=Usage(input_tokens, output_tokens),
        model="fake-model",
        provider="fake",
    )


def failure(kind: ErrorKind, *, retry_after: float | None = None) -> AdapterError:
    """An adapter error of one kind."""
    return AdapterError(kind, f"scripted {kind.value}", provider="fake", retry_after_seconds=retry_after)


def request(text: str = "hi", *, max_tokens: int = 100) -> ChatRequest:
    """A one-message chat request."""
    return ChatRequest(messages=(Message("user", text),), max_tokens=max_tokens)
