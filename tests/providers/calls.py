"""Helpers that call an adapter the way tests need: collect a stream, take the response, expect a failure."""

from __future__ import annotations

import pytest
from tests.builders.chat import chat_request

from jesus_adapters import AdapterError, ChatRequest, ChatResponse, ModelAdapter, StreamDone, StreamEvent


async def collect(
    adapter: ModelAdapter, request: ChatRequest | None = None, *, timeout_seconds: float = 5.0
) -> list[StreamEvent]:
    """Every event of one streamed call."""
    chosen = request or chat_request()
    return [event async for event in adapter.stream(chosen, timeout_seconds=timeout_seconds)]


async def call(
    adapter: ModelAdapter, request: ChatRequest | None = None, *, stream: bool, timeout_seconds: float = 5.0
) -> None:
    """One call, streamed or not, its answer discarded."""
    if stream:
        await collect(adapter, request, timeout_seconds=timeout_seconds)
    else:
        await adapter.complete(request or chat_request(), timeout_seconds=timeout_seconds)


async def response_of(
    adapter: ModelAdapter, request: ChatRequest | None = None, *, stream: bool, timeout_seconds: float = 5.0
) -> ChatResponse:
    """The response of one call: `complete`'s, or the one a stream's final `StreamDone` carries."""
    chosen = request or chat_request()
    if not stream:
        return await adapter.complete(chosen, timeout_seconds=timeout_seconds)
    done = (await collect(adapter, chosen, timeout_seconds=timeout_seconds))[-1]
    assert isinstance(done, StreamDone), f"the stream ended with {done!r}, not StreamDone"
    return done.response


async def failure_of(
    adapter: ModelAdapter,
    request: ChatRequest | None = None,
    *,
    stream: bool = False,
    timeout_seconds: float = 5.0,
) -> AdapterError:
    """The `AdapterError` one call raises (the test fails when it raises none)."""
    with pytest.raises(AdapterError) as caught:
        await call(adapter, request, stream=stream, timeout_seconds=timeout_seconds)
    return caught.value
