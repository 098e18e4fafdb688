"""Token estimates for answers that report no usage (dry runs, servers without streaming usage).

About four characters per token is the usual rule of thumb for English text with BPE tokenizers.
An estimate rounds up and counts at least one token per non-empty part, so metering an estimated
call never comes out as free.
"""

from __future__ import annotations

import json
import math

from jesus_adapters.types import ChatRequest, Message, ToolCall, Usage

CHARS_PER_TOKEN = 4
# Every message costs a few tokens of framing (role markers) beyond its text.
TOKENS_PER_MESSAGE = 3


def estimate_tokens(text: str) -> int:
    """Estimated tokens in `text`: ceil(len / 4), zero only for empty text."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _tool_calls_text(tool_calls: tuple[ToolCall, ...]) -> str:
    return "".join(call.name + json.dumps(call.arguments, sort_keys=True) for call in tool_calls)


def _message_tokens(message: Message) -> int:
    return TOKENS_PER_MESSAGE + estimate_tokens(message.content + _tool_calls_text(message.tool_calls))


def estimate_input_tokens(request: ChatRequest) -> int:
    """Estimated prompt tokens of `request`: its messages and its tool definitions."""
    tools_text = "".join(
        tool.name + tool.description + json.dumps(tool.input_schema, sort_keys=True) for tool in request.tools
    )
    return sum(_message_tokens(message) for message in request.messages) + estimate_tokens(tools_text)


def estimate_output_tokens(content: str, tool_calls: tuple[ToolCall, ...]) -> int:
    """Estimated completion tokens of an answer's text and tool calls (at least 1)."""
    return max(1, estimate_tokens(content + _tool_calls_text(tool_calls)))


def estimate_usage(request: ChatRequest, content: str, tool_calls: tuple[ToolCall, ...]) -> Usage:
    """Estimated usage of one call: the request's prompt and the answer's text and tool calls."""
    return Usage(
        input_tokens=estimate_input_tokens(request),
        output_tokens=estimate_output_tokens(content, tool_calls),
    )
