"""Token estimates for answers that report no usage (dry runs, servers without streaming usage), and the
upper bound of a request's input tokens that the router reserves against a run's allowance.

About four characters per token is the usual rule of thumb for English text with BPE tokenizers.
An estimate rounds up and counts at least one token per non-empty part, so metering an estimated
call never comes out as free. An estimate can be low (code, non-Latin scripts, emoji); the upper bound
cannot (ADR 14): a BPE token covers at least one byte of the text it encodes.
"""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any

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


# What a chat template adds around the text, in tokens, generously: role markers and separators per
# message; the template's start and the assistant turn it opens per request; the framing of each tool
# definition; and the system text a provider adds when tools are offered at all (Anthropic documents a
# few hundred tokens for it).
MESSAGE_OVERHEAD_TOKENS = 16
REQUEST_OVERHEAD_TOKENS = 16
TOOL_OVERHEAD_TOKENS = 32
TOOLS_PREAMBLE_TOKENS = 1024


def text_tokens_upper_bound(text: str) -> int:
    """At most how many tokens `text` can become: its UTF-8 bytes, or those of its NFKC form where a
    tokenizer's normalisation makes it longer (one character can expand to eighteen).

    Lone surrogates (which JSON can carry) count as the three bytes they take when passed through.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return size
    return max(size, len(unicodedata.normalize("NFKC", text).encode("utf-8", "surrogatepass")))


def _json_tokens_upper_bound(value: Any) -> int:
    # ASCII-escaped JSON is at least as long as its UTF-8 form, and indented JSON at least as long as
    # any compact spacing an adapter or a provider's template renders it with.
    return text_tokens_upper_bound(
        json.dumps(value, ensure_ascii=True, indent=2, sort_keys=True, default=str)
    )


def _message_tokens_upper_bound(message: Message) -> int:
    total = MESSAGE_OVERHEAD_TOKENS + text_tokens_upper_bound(message.content)
    total += text_tokens_upper_bound(message.tool_call_id or "")
    for call in message.tool_calls:
        total += (
            MESSAGE_OVERHEAD_TOKENS + text_tokens_upper_bound(call.id) + text_tokens_upper_bound(call.name)
        )
        total += _json_tokens_upper_bound(call.arguments)
    return total


def input_tokens_upper_bound(request: ChatRequest) -> int:
    """At most how many input tokens a provider can bill for `request`: the bytes of every text it sends
    (messages, tool calls and their arguments, tool names, descriptions and schemas) plus a generous
    allowance for what chat templates add. The router reserves this before a call (ADR 14)."""
    total = REQUEST_OVERHEAD_TOKENS + sum(_message_tokens_upper_bound(m) for m in request.messages)
    if request.tools:
        total += TOOLS_PREAMBLE_TOKENS
    for tool in request.tools:
        total += TOOL_OVERHEAD_TOKENS + text_tokens_upper_bound(tool.name)
        total += text_tokens_upper_bound(tool.description) + _json_tokens_upper_bound(tool.input_schema)
    return total


def estimate_output_tokens(content: str, tool_calls: tuple[ToolCall, ...]) -> int:
    """Estimated completion tokens of an answer's text and tool calls (at least 1)."""
    return max(1, estimate_tokens(content + _tool_calls_text(tool_calls)))


def estimate_usage(request: ChatRequest, content: str, tool_calls: tuple[ToolCall, ...]) -> Usage:
    """Estimated usage of one call: the request's prompt and the answer's text and tool calls."""
    return Usage(
        input_tokens=estimate_input_tokens(request),
        output_tokens=estimate_output_tokens(content, tool_calls),
    )
