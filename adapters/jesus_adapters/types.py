"""Typed requests and responses shared by every adapter, the router and the runner.

Money is integer micro-units of a currency (1 USD = 1_000_000 micros); no floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]

MICROS_PER_UNIT = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are quoted per million tokens


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: name, description and a JSON Schema for its arguments."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model asked for; `arguments` is the decoded JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. `tool_call_id` is set on role `tool` (the result of that call)."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A provider-neutral chat request; the adapter supplies the model name."""

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call consumed, as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True, slots=True)
class Price:
    """Prices in micro-units per million tokens."""

    input_micros_per_mtok: int = 0
    output_micros_per_mtok: int = 0

    def cost_micros(self, usage: Usage) -> int:
        """Cost of `usage` in micro-units, rounded up so metering never under-charges."""
        raw = (
            usage.input_tokens * self.input_micros_per_mtok
            + usage.output_tokens * self.output_micros_per_mtok
        )
        return math.ceil(raw / TOKENS_PER_PRICE_UNIT)


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A complete answer: text and/or tool calls, why it stopped, and usage.

    `usage_estimated` is true when the provider reported no usage and the adapter estimated it
    (dry runs, servers that do not report usage on streams).
    """

    content: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: FinishReason
    usage: Usage
    model: str
    provider: str
    usage_estimated: bool = False


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed text."""

    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class StreamDone:
    """The end of a stream, carrying the assembled response (text, tool calls, usage)."""

    response: ChatResponse
    type: Literal["done"] = "done"


StreamEvent = TextDelta | StreamDone


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    """A failure a scripted adapter plays in its turn instead of a reply: an `ErrorKind` value (the error
    module builds on this one, so the kind is its string) and a message."""

    kind: str
    message: str = ""


ScriptedTurn = ChatResponse | ScriptedFailure


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    """Everything needed to build an adapter for one model endpoint.

    `api_key` is resolved by the caller (router) from a Secret or the environment; an adapter never
    reads credentials by itself. `scripted_replies` feeds the `scripted` provider, which plays them to
    each run from the start; with `scripted_cycle` it starts over at the end instead of running out
    (dry runs).
    """

    provider: str
    model: str
    base_url: str | None = None
    api_key: str | None = None
    price: Price = field(default_factory=Price)
    extra_headers: dict[str, str] = field(default_factory=dict)
    scripted_replies: tuple[ScriptedTurn, ...] = ()
    scripted_cycle: bool = False
