"""The OpenAI Chat Completions wire format, both ways, as plain JSON: what the router service
speaks to runner pods (and any OpenAI-compatible client) and what the runner's client reads back.

Every response carries the router's call record under the extra top-level key `jesus`, so a runner
learns which adapter answered, the fallbacks taken and the cost without a second request.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import ValidationError

from jesus.router.schema import DEFAULT_MAX_TOKENS as DEFAULT_MAX_TOKENS  # where callers have found it
from jesus.router.schema import ChatCompletionRequest, WireToolCall, error_text
from jesus_adapters.types import ChatRequest, ChatResponse, FinishReason, Message, ToolCall, ToolSpec, Usage

RECORD_KEY = "jesus"
_FINISH_REASONS: tuple[FinishReason, ...] = ("stop", "length", "tool_calls", "content_filter")


class WireError(ValueError):
    """A request body that is not a valid chat completion request; the message names the field."""


def parse_chat_request(body: Any) -> tuple[ChatRequest, bool]:
    """A Chat Completions request body as a ChatRequest, and whether it asks for a stream.

    The body is validated against the wire schema (`jesus.router.schema`); WireError names the field."""
    try:
        wire = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise WireError(error_text(exc)) from None
    messages = tuple(
        Message(
            role="system" if m.role == "developer" else m.role,
            content=m.content,
            tool_calls=tuple(_tool_call(c) for c in m.tool_calls),
            tool_call_id=m.tool_call_id,
        )
        for m in wire.messages
    )
    tools = tuple(
        ToolSpec(name=t.function.name, description=t.function.description, input_schema=t.function.parameters)
        for t in wire.tools
    )
    request = ChatRequest(messages=messages, tools=tools, max_tokens=wire.max_tokens, stop=wire.stop)
    return request, wire.stream


def _tool_call(call: WireToolCall) -> ToolCall:
    return ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)


def _parse_tool_call(where: str, raw: Any) -> ToolCall:
    try:
        return _tool_call(WireToolCall.model_validate(raw))
    except ValidationError as exc:
        raise WireError(error_text(exc, where)) from None


def request_body(request: ChatRequest, *, model: str = "route") -> dict[str, Any]:
    """A ChatRequest as a Chat Completions request body (the runner's side)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message_body(m) for m in request.messages],
        "max_tokens": request.max_tokens,
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
            }
            for t in request.tools
        ]
    if request.stop:
        body["stop"] = list(request.stop)
    return body


def _message_body(message: Message) -> dict[str, Any]:
    body: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        body["tool_calls"] = [_tool_call_body(c) for c in message.tool_calls]
    if message.tool_call_id is not None:
        body["tool_call_id"] = message.tool_call_id
    return body


def _tool_call_body(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }


def completion_body(response: ChatResponse, record: dict[str, Any], *, completion_id: str) -> dict[str, Any]:
    """A ChatResponse as a Chat Completions response body, with the call record."""
    message: dict[str, Any] = {"role": "assistant", "content": response.content}
    if response.tool_calls:
        message["tool_calls"] = [_tool_call_body(c) for c in response.tool_calls]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "choices": [{"index": 0, "message": message, "finish_reason": response.finish_reason}],
        "usage": _usage_body(response.usage),
        RECORD_KEY: record,
    }


def _usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def chunk_body(
    completion_id: str, model: str, delta: dict[str, Any], finish_reason: str | None
) -> dict[str, Any]:
    """One streamed chunk."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def final_chunks(completion_id: str, response: ChatResponse, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunks that end a stream: tool calls and the finish reason, then usage and the record."""
    delta: dict[str, Any] = {}
    if response.tool_calls:
        delta["tool_calls"] = [
            {"index": i, **_tool_call_body(call)} for i, call in enumerate(response.tool_calls)
        ]
    usage_chunk = chunk_body(completion_id, response.model, {}, None)
    usage_chunk["choices"] = []
    usage_chunk["usage"] = _usage_body(response.usage)
    usage_chunk[RECORD_KEY] = record
    return [chunk_body(completion_id, response.model, delta, response.finish_reason), usage_chunk]


def error_body(message: str, *, kind: str, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error in the OpenAI shape; `code` is the error kind (e.g. AllowanceExceeded, Overloaded)."""
    body: dict[str, Any] = {"error": {"message": message, "type": "jesus_router_error", "code": kind}}
    if record is not None:
        body[RECORD_KEY] = record
    return body


def parse_completion(body: dict[str, Any]) -> ChatResponse:
    """A Chat Completions response body as a ChatResponse (the runner's side). KeyError/ValueError
    when the body is not one."""
    choice = body["choices"][0]
    message = choice["message"]
    calls = tuple(
        _parse_tool_call(f"choices[0].message.tool_calls[{i}]", c)
        for i, c in enumerate(message.get("tool_calls") or [])
    )
    finish = choice.get("finish_reason") or "stop"
    usage = body.get("usage") or {}
    return ChatResponse(
        content=message.get("content") or "",
        tool_calls=calls,
        finish_reason=finish if finish in _FINISH_REASONS else "stop",
        usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
        model=str(body.get("model", "")),
        provider=str((body.get(RECORD_KEY) or {}).get("provider") or "router"),
    )
