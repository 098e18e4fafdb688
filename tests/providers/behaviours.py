"""What a fake provider does with one request: the scriptable behaviours.

Behaviours are provider-neutral; each fake renders them in its own wire protocol (status codes,
error bodies, SSE framing). Queue them with `FakeProvider.script(...)`; each request takes the
next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FakeToolCall:
    """A tool call the fake model makes."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A successful answer, streamed or not as the request asks.

    `finish_reason` is the provider's own wire value ("stop", "content_filter", "end_turn",
    "refusal", ...); `None` picks the natural one (a tool call's or a plain stop).
    `include_usage=False` leaves usage out of the answer. For streams: `chunk_chars` sizes the text
    pieces, `drop_after_events` closes the connection after that many SSE events, and
    `omit_end=True` ends the stream cleanly but without its final events (finish chunk / [DONE],
    message_delta / message_stop). `delay_seconds` waits before answering; `event_gap_seconds`
    waits between streamed events.
    """

    text: str = "ok"
    tool_calls: tuple[FakeToolCall, ...] = ()
    input_tokens: int = 11
    output_tokens: int = 7
    finish_reason: str | None = None
    include_usage: bool = True
    chunk_chars: int = 4
    drop_after_events: int | None = None
    omit_end: bool = False
    delay_seconds: float = 0.0
    event_gap_seconds: float = 0.0


@dataclass(frozen=True)
class Fail:
    """An error answer: HTTP `status` and the provider's error body.

    `type` and `code` default to what the provider sends for that status. `headers` adds response
    headers, e.g. {"retry-after": "2"}.
    """

    status: int
    message: str = "fake failure"
    type: str | None = None
    code: str | int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamFail:
    """A stream that starts fine, sends `after_events` events, then an error event in the stream."""

    after_events: int = 2
    status: int = 500
    message: str = "fake failure inside the stream"
    type: str | None = None


@dataclass(frozen=True)
class Hang:
    """Accept the request and answer nothing for `seconds` (`None`: until the server stops)."""

    seconds: float | None = None


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering."""


@dataclass(frozen=True)
class Raw:
    """Answer with exactly this status, body and content type (malformed answers)."""

    body: str | bytes
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Behaviour = Reply | Fail | StreamFail | Hang | Drop | Raw
