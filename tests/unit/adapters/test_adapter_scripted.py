"""The scripted adapter: canned replies in order for each run, estimated usage, real prices, a clear end."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from tests.builders.adapters import adapter_config
from tests.builders.chat import chat_request
from tests.providers.calls import collect, failure_of

from jesus_adapters import (
    AdapterError,
    ChatRequest,
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
from jesus_adapters.scripted import MAX_TRACKED_RUNS, RunCursors, ScriptedAdapter
from jesus_adapters.types import ScriptedFailure


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


def run_request(run: str, namespace: str = "team", *, max_tokens: int = 256) -> ChatRequest:
    """A request as the router sends it for one run: the run and its namespace in the metadata."""
    return replace(chat_request(max_tokens=max_tokens), metadata={"run": run, "namespace": namespace})


def numbered(count: int) -> tuple[ChatResponse, ...]:
    return tuple(scripted_reply(f"reply {number}") for number in range(count))


async def test_each_run_plays_the_script_from_the_start() -> None:
    adapter = build_adapter(adapter_config("scripted", None, scripted_replies=numbered(3)))

    first_a = await adapter.complete(run_request("a"), timeout_seconds=1)
    first_b = await adapter.complete(run_request("b"), timeout_seconds=1)
    second_a = await adapter.complete(run_request("a"), timeout_seconds=1)
    other_namespace = await adapter.complete(run_request("a", "elsewhere"), timeout_seconds=1)

    assert [first_a.content, first_b.content, second_a.content, other_namespace.content] == [
        "reply 0",
        "reply 0",
        "reply 1",
        "reply 0",
    ]


async def test_concurrent_runs_get_the_same_sequence_independently() -> None:
    adapter = build_adapter(adapter_config("scripted", None, scripted_replies=numbered(5)))

    async def play(run: str) -> list[str]:
        return [(await adapter.complete(run_request(run), timeout_seconds=1)).content for _ in range(5)]

    sequences = await asyncio.gather(*(play(f"run-{number}") for number in range(8)))

    assert all(sequence == [f"reply {n}" for n in range(5)] for sequence in sequences)


async def test_a_run_that_runs_out_fails_clearly_and_the_others_go_on() -> None:
    adapter = build_adapter(adapter_config("scripted", None, scripted_replies=numbered(2)))
    for _ in range(2):
        await adapter.complete(run_request("greedy"), timeout_seconds=1)

    with pytest.raises(AdapterError) as caught:
        await adapter.complete(run_request("greedy"), timeout_seconds=1)
    fresh = await adapter.complete(run_request("fresh"), timeout_seconds=1)

    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert caught.value.message == (
        "model 'test-model' has no scripted reply left for call 3 (2 scripted) of run team/greedy"
    )
    assert fresh.content == "reply 0"


async def test_a_cycled_script_never_runs_out() -> None:
    config = adapter_config("scripted", None, scripted_replies=numbered(2))
    adapter = build_adapter(replace(config, scripted_cycle=True))

    contents = [(await adapter.complete(run_request("long"), timeout_seconds=1)).content for _ in range(301)]

    assert contents[:4] == ["reply 0", "reply 1", "reply 0", "reply 1"]
    assert contents[-1] == "reply 0"


async def test_failures_come_in_each_runs_turn_and_a_final_one_repeats() -> None:
    script = (ScriptedFailure("Overloaded", "busy"), scripted_reply("answer"), ScriptedFailure("Timeout"))
    adapter = build_adapter(adapter_config("scripted", None, scripted_replies=script))

    for run in ("a", "b"):
        with pytest.raises(AdapterError) as first:
            await adapter.complete(run_request(run), timeout_seconds=1)
        assert (first.value.kind, first.value.message) == (ErrorKind.OVERLOADED, "busy")
        assert (await adapter.complete(run_request(run), timeout_seconds=1)).content == "answer"
        for _ in range(2):
            with pytest.raises(AdapterError) as last:
                await adapter.complete(run_request(run), timeout_seconds=1)
            assert (last.value.kind, last.value.message) == (ErrorKind.TIMEOUT, "scripted Timeout")


async def test_per_run_state_is_bounded_and_a_forgotten_run_starts_again() -> None:
    adapter = build_adapter(adapter_config("scripted", None, scripted_replies=numbered(2)))
    assert isinstance(adapter, ScriptedAdapter)
    await adapter.complete(run_request("kept"), timeout_seconds=1)
    assert adapter.calls_made("kept", "team") == 1

    for number in range(MAX_TRACKED_RUNS + 10):
        await adapter.complete(run_request(f"run-{number}"), timeout_seconds=1)

    assert adapter.tracked_runs == MAX_TRACKED_RUNS
    assert adapter.calls_made("kept", "team") == 0, "the least recently used run was forgotten"
    adapter.forget_run(f"run-{MAX_TRACKED_RUNS + 9}", "team")
    assert adapter.tracked_runs == MAX_TRACKED_RUNS - 1
    again = await adapter.complete(run_request(f"run-{MAX_TRACKED_RUNS + 9}"), timeout_seconds=1)
    assert again.content == "reply 0"


def test_run_cursors_forget_the_least_recently_used_first() -> None:
    cursors = RunCursors(limit=2)
    assert cursors.take(("ns", "a")) == 0
    assert cursors.take(("ns", "b")) == 0
    assert cursors.take(("ns", "a")) == 1  # a is now the most recently used
    assert cursors.take(("ns", "c")) == 0  # b goes
    assert (cursors.turns_taken(("ns", "a")), cursors.turns_taken(("ns", "b"))) == (2, 0)
    assert len(cursors) == 2


async def test_estimated_output_stops_at_the_requests_max_tokens_as_a_provider_would() -> None:
    adapter = build_adapter(adapter_config("scripted", None, scripted_replies=(scripted_reply("x" * 400),)))

    response = await adapter.complete(run_request("a", max_tokens=7), timeout_seconds=1)

    assert response.usage.output_tokens == 7
    assert response.usage_estimated
