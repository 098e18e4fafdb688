"""The OpenAI Chat Completions wire format, both ways, as plain JSON: what the router service
speaks to runner pods (and any OpenAI-compatible client) and what the runner's client reads back.

Every response carries the router's call record under the extra top-level key `jesus`, so a runner
learns which adapter answered, the fallbacks taken and the cost without a second request.
"""

from __future__ import annotations

import json
import time
from typing import Any

from jesus_adapters.types import ChatRequest, ChatResponse, FinishReason, Message, ToolCall, ToolSpec, Usage

RECORD_KEY = "jesus"
DEFAULT_MAX_TOKENS = 1024
_ROLES = ("system", "user", "assistant", "tool")
_FINISH_REASONS: tuple[FinishReason, ...] = ("stop", "length", "tool_calls", "content_filter")


class WireError(ValueError):
    """A request body that is not a valid chat completion request; the message names the field."""


def parse_chat_request(body: Any) -> tuple[ChatRequest, bool]:
    """A Chat Completions request body as a ChatRequest, and whether it asks for a stream."""
    if not isinstance(body, dict):
        raise WireError("the request body must be a JSON object")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise WireError("messages: a non-empty list is required")
    messages = tuple(_parse_message(index, m) for index, m in enumerate(raw_messages))
    tools = tuple(_parse_tool(index, t) for index, t in enumerate(body.get("tools") or []))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", DEFAULT_MAX_TOKENS))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise WireError("max_tokens: a positive integer is required")
    stop = body.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, list | tuple) or not all(isinstance(s, str) for s in stop):
        raise WireError("stop: a string or a list of strings is required")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise WireError("stream: true or false is required")
    return ChatRequest(messages=messages, tools=tools, max_tokens=max_tokens, stop=tuple(stop)), stream


def _parse_message(index: int, raw: Any) -> Message:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise WireError(f"{where}: an object is required")
    role = raw.get("role")
    if role == "developer":
        role = "system"
    if role not in _ROLES:
        raise WireError(f"{where}.role: one of {', '.join(_ROLES)} is required")
    content = _content_text(where, raw.get("content"))
    calls = tuple(
        _parse_tool_call(f"{where}.tool_calls[{i}]", c) for i, c in enumerate(raw.get("tool_calls") or [])
    )
    tool_call_id = raw.get("tool_call_id")
    if role == "tool" and not isinstance(tool_call_id, str):
        raise WireError(f"{where}.tool_call_id: required on a tool message")
    return Message(role=role, content=content, tool_calls=calls, tool_call_id=tool_call_id)


def _content_text(where: str, content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise WireError(f"{where}.content: only text parts are supported")
        return "".join(parts)
    raise WireError(f"{where}.content: a string or a list of text parts is required")


def _parse_tool_call(where: str, raw: Any) -> ToolCall:
    if not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
        raise WireError(f"{where}: an object with a function is required")
    function = raw["function"]
    arguments_text = function.get("arguments") or "{}"
    try:
        arguments = json.loads(arguments_text) if isinstance(arguments_text, str) else arguments_text
    except json.JSONDecodeError as exc:
        raise WireError(f"{where}.function.arguments: not JSON: {exc}") from None
    if not isinstance(arguments, dict) or not isinstance(function.get("name"), str):
        raise WireError(f"{where}.function: a name and JSON object arguments are required")
    return ToolCall(id=str(raw.get("id") or ""), name=function["name"], arguments=arguments)


def _parse_tool(index: int, raw: Any) -> ToolSpec:
    where = f"tools[{index}]"
    if not isinstance(raw, dict) or raw.get("type", "function") != "function":
        raise WireError(f"{where}: only function tools are supported")
    function = raw.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise WireError(f"{where}.function.name: required")
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise WireError(f"{where}.function.parameters: a JSON Schema object is required")
    return ToolSpec(
        name=function["name"], description=str(function.get("description") or ""), input_schema=schema
    )


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
