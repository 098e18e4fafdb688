"""The scripted adapter: canned replies in order, estimated usage, real prices, a clear end."""

from __future__ import annotations

import asyncio

import pytest
from tests.builders.adapters import adapter_config
from tests.builders.chat import chat_request
from tests.providers.calls import collect, failure_of

from jesus_adapters import (
    AdapterError,
    ChatResponse,
    ErrorKind,
    Price,
    StreamDone,
    TextDelta,
    ToolCall,
    Usage,
    build_adapter,
    effective_price,
)
from jesus_adapters.estimate import CHARS_PER_TOKEN, estimate_usage


def scripted_reply(
    content: str = "", *, tool_calls: tuple[ToolCall, ...] = (), usage: Usage | None = None
) -> ChatResponse:
    """A reply as a spec would script it: no usage unless given, model and provider left to the adapter."""
    return ChatResponse(
        content=content,
        tool_calls=tool_calls,
        finish_reason="tool_calls" if tool_calls else "stop",
        usage=usage or Usage(),
        model="",
        provider="",
    )


async def test_replies_come_in_order_and_then_run_out() -> None:
    call = ToolCall(id="call_1", name="lookup", arguments={"word": "haiku"})
    adapter = build_adapter(
        adapter_config(
            "scripted",
            None,
            scripted_replies=(scripted_reply(tool_calls=(call,)), scripted_reply("A short poem.")),
        )
    )

    first = await adapter.complete(chat_request(), timeout_seconds=1)
    second = await adapter.complete(chat_request(), timeout_seconds=1)
    error = await failure_of(adapter)

    assert first.tool_calls == (call,)
    assert first.finish_reason == "tool_calls"
    assert second.content == "A short poem."
    assert second.finish_reason == "stop"
    assert (first.provider, first.model) == ("scripted", "test-model")
    assert error.kind is ErrorKind.INVALID_REQUEST
    assert not error.retryable
    assert "no scripted reply left for call 3 (2 scripted)" in error.message


async def test_usage_is_estimated_when_the_script_gives_none() -> None:
    request = chat_request()
    adapter = build_adapter(adapter_config("scripted", None, scripted_replies=(scripted_reply("x" * 400),)))

    response = await adapter.complete(request, timeout_seconds=1)

    assert response.usage == estimate_usage(request, "x" * 400, ())
    assert response.usage_estimated
    assert response.usage.output_tokens == 400 // CHARS_PER_TOKEN


async def test_scripted_usage_is_kept() -> None:
    usage = Usage(input_tokens=1234, output_tokens=56)
    adapter = build_adapter(
        adapter_config("scripted", None, scripted_replies=(scripted_reply("hi", usage=usage),))
    )

    response = await adapter.complete(chat_request(), timeout_seconds=1)

    assert response.usage == usage
    assert not response.usage_estimated


async def test_a_dry_run_costs_what_the_real_call_would() -> None:
    price = Price(input_micros_per_mtok=3_000_000, output_micros_per_mtok=15_000_000)
    usage = Usage(input_tokens=2_000, output_tokens=1_000)
    config = adapter_config(
        "scripted", None, price=price, scripted_replies=(scripted_reply("hi", usage=usage),)
    )
    adapter = build_adapter(config)

    response = await adapter.complete(chat_request(), timeout_seconds=1)

    expected = (2_000 * 3_000_000 + 1_000 * 15_000_000) // 1_000_000
    assert effective_price(config).cost_micros(response.usage) == expected


async def test_stream_yields_word_pieces_then_done() -> None:
    text = "An old silent pond,  a frog jumps in."
    adapter = build_adapter(adapter_config("scripted", None, scripted_replies=(scripted_reply(text),)))

    events = await collect(adapter)

    deltas = [event.text for event in events if isinstance(event, TextDelta)]
    assert len(deltas) == len(text.split())
    assert "".join(deltas) == text
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert done.response.content == text


async def test_concurrent_calls_take_distinct_replies() -> None:
    replies = tuple(scripted_reply(f"reply {number}") for number in range(20))
    adapter = build_adapter(adapter_config("scripted", None, scripted_replies=replies))

    responses = await asyncio.gather(*(adapter.complete(chat_request(), timeout_seconds=1) for _ in replies))

    assert sorted(response.content for response in responses) == sorted(reply.content for reply in replies)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_no_replies_at_all_is_a_clear_error(stream: bool) -> None:
    adapter = build_adapter(adapter_config("scripted", None))

    error = await failure_of(adapter, stream=stream)

    assert error.kind is ErrorKind.INVALID_REQUEST
    assert "(0 scripted)" in error.message


async def test_running_out_is_an_adapter_error_not_a_crash() -> None:
    adapter = build_adapter(adapter_config("scripted", None, scripted_replies=(scripted_reply("one"),)))
    await adapter.complete(chat_request(), timeout_seconds=1)

    with pytest.raises(AdapterError, match="no scripted reply left"):
        await adapter.complete(chat_request(), timeout_seconds=1)
