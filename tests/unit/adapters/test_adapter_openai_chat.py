"""The Chat Completions adapters (openai, openai-compatible, vllm, llamacpp) against local fakes.

Every test runs the official openai SDK against a local server speaking the provider's dialect.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from tests.builders.adapters import adapter_config
from tests.builders.chat import LOOKUP_TOOL, chat_request, tool_round_trip_request
from tests.providers import (
    Drop,
    Fail,
    FakeProvider,
    FakeToolCall,
    Hang,
    Raw,
    Reply,
    StreamFail,
    serve_openai,
    unused_base_url,
)
from tests.providers.calls import collect, failure_of, response_of
from tests.providers.openai_wire import Dialect

from jesus_adapters import (
    PROVIDERS,
    AdapterError,
    ErrorKind,
    ModelAdapter,
    StreamDone,
    TextDelta,
    build_adapter,
)
from jesus_adapters.estimate import estimate_usage
from jesus_adapters.openai_chat import OpenAIChatAdapter

# provider name -> the dialect its fake speaks
CASES: dict[str, Dialect] = {
    "openai": "openai",
    "openai-compatible": "openai",
    "vllm": "vllm",
    "llamacpp": "llamacpp",
}

# What each server says when the prompt does not fit, as (message, error type).
CONTEXT_TOO_LONG: dict[Dialect, tuple[str, str | None]] = {
    "openai": (
        "This model's maximum context length is 128000 tokens. However, your messages resulted in "
        "130000 tokens.",
        "invalid_request_error",
    ),
    "vllm": (
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
        "(4000 in the messages, 1000 in the completion). Please reduce the length of the messages "
        "or completion.",
        None,
    ),
    "llamacpp": (
        "the request exceeds the available context size, try increasing it",
        "exceed_context_size_error",
    ),
}


@dataclass
class Endpoint:
    provider: str
    dialect: Dialect
    fake: FakeProvider
    adapter: ModelAdapter


@pytest.fixture(params=sorted(CASES))
async def endpoint(request: pytest.FixtureRequest) -> AsyncIterator[Endpoint]:
    provider: str = request.param
    async with serve_openai(CASES[provider]) as fake:
        adapter = build_adapter(adapter_config(provider, fake.base_url))
        yield Endpoint(provider, CASES[provider], fake, adapter)
        await adapter.aclose()


async def test_complete_returns_text_usage_and_provider(endpoint: Endpoint) -> None:
    endpoint.fake.script(Reply(text="A short poem.", input_tokens=21, output_tokens=4))

    response = await endpoint.adapter.complete(chat_request(), timeout_seconds=5)

    assert response.content == "A short poem."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (21, 4)
    assert response.finish_reason == "stop"
    assert response.provider == endpoint.provider
    assert not response.usage_estimated
    assert response.model == "test-model"


async def test_request_carries_messages_model_and_length_cap(endpoint: Endpoint) -> None:
    endpoint.fake.script(Reply())

    await endpoint.adapter.complete(chat_request(max_tokens=77, stop=("END",)), timeout_seconds=5)

    sent = endpoint.fake.requests[0].json
    assert sent["model"] == "test-model"
    assert sent["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is a haiku?"},
    ]
    assert sent[PROVIDERS[endpoint.provider].max_tokens_field] == 77
    assert sent["stop"] == ["END"]
    assert "tools" not in sent


async def test_api_key_and_extra_headers_are_sent() -> None:
    async with serve_openai() as fake:
        fake.script(Reply())
        config = adapter_config("openai", fake.base_url, extra_headers={"X-Run": "run-1"})
        adapter = build_adapter(config)
        await adapter.complete(chat_request(), timeout_seconds=5)
        await adapter.aclose()

    headers = fake.requests[0].headers
    assert headers["authorization"] == "Bearer sk-test"
    assert headers["x-run"] == "run-1"


async def test_stream_deltas_add_up_to_the_answer(endpoint: Endpoint) -> None:
    text = "Five, seven, five: a haiku counts its syllables."
    endpoint.fake.script(Reply(text=text, input_tokens=30, output_tokens=12, chunk_chars=5))

    events = await collect(endpoint.adapter)

    deltas = [event for event in events if isinstance(event, TextDelta)]
    done = events[-1]
    assert len(deltas) > 1
    assert "".join(delta.text for delta in deltas) == text
    assert isinstance(done, StreamDone)
    assert done.response.content == text
    assert (done.response.usage.input_tokens, done.response.usage.output_tokens) == (30, 12)
    assert sum(isinstance(event, StreamDone) for event in events) == 1


async def test_stream_asks_for_usage_where_the_profile_says_so(endpoint: Endpoint) -> None:
    endpoint.fake.script(Reply())

    await collect(endpoint.adapter)

    sent = endpoint.fake.requests[0].json
    assert sent["stream"] is True
    asks = (sent.get("stream_options") or {}).get("include_usage", False)
    assert asks == PROVIDERS[endpoint.provider].capabilities.streaming_usage


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_tool_calls_come_back_decoded(endpoint: Endpoint, stream: bool) -> None:
    calls = (
        FakeToolCall("call_a", "lookup", {"word": "haiku"}),
        FakeToolCall("call_b", "lookup", {"word": "tanka", "nested": {"lines": [5, 7, 5, 7, 7]}}),
    )
    endpoint.fake.script(Reply(text="", tool_calls=calls, chunk_chars=3))

    response = await response_of(endpoint.adapter, chat_request(tools=(LOOKUP_TOOL,)), stream=stream)

    assert response.finish_reason == "tool_calls"
    assert [(call.id, call.name, call.arguments) for call in response.tool_calls] == [
        (call.id, call.name, call.arguments) for call in calls
    ]


async def test_tools_and_tool_results_go_out_in_chat_completions_shape(endpoint: Endpoint) -> None:
    endpoint.fake.script(Reply(text="A haiku is a short Japanese poem."))

    await endpoint.adapter.complete(tool_round_trip_request(), timeout_seconds=5)

    sent = endpoint.fake.requests[0].json
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": LOOKUP_TOOL.name,
                "description": LOOKUP_TOOL.description,
                "parameters": LOOKUP_TOOL.input_schema,
            },
        }
    ]
    assistant, tool_result = sent["messages"][2], sent["messages"][3]
    assert assistant["role"] == "assistant"
    assert assistant["content"] == "Let me look that up."
    assert assistant["tool_calls"][0]["id"] == "call_lookup_1"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"word": "haiku"}
    assert tool_result == {
        "role": "tool",
        "tool_call_id": "call_lookup_1",
        "content": "a short Japanese poem",
    }


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_missing_usage_is_estimated_not_zero(endpoint: Endpoint, stream: bool) -> None:
    endpoint.fake.script(Reply(text="An answer without usage.", include_usage=False))

    response = await response_of(endpoint.adapter, stream=stream)

    assert response.usage == estimate_usage(chat_request(), "An answer without usage.", ())
    assert response.usage_estimated
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0


async def test_sdk_retries_are_off(endpoint: Endpoint) -> None:
    endpoint.fake.script(Fail(503), Reply())

    error = await failure_of(endpoint.adapter)

    assert error.kind is ErrorKind.OVERLOADED
    assert len(endpoint.fake.requests) == 1
    assert endpoint.fake.pending == 1


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ErrorKind.INVALID_REQUEST),
        (401, ErrorKind.AUTHENTICATION),
        (403, ErrorKind.AUTHENTICATION),
        (404, ErrorKind.INVALID_REQUEST),
        (408, ErrorKind.TIMEOUT),
        (422, ErrorKind.INVALID_REQUEST),
        (429, ErrorKind.RATE_LIMITED),
        (500, ErrorKind.OVERLOADED),
        (502, ErrorKind.OVERLOADED),
        (503, ErrorKind.OVERLOADED),
    ],
)
async def test_error_statuses_map_to_kinds(endpoint: Endpoint, status: int, kind: ErrorKind) -> None:
    endpoint.fake.script(Fail(status, f"failure number {status}"))

    error = await failure_of(endpoint.adapter)

    assert error.kind is kind
    assert error.status_code == status
    assert error.provider == endpoint.provider
    assert f"failure number {status}" in error.message
    assert error.retryable == kind.retryable


async def test_rate_limit_carries_retry_after(endpoint: Endpoint) -> None:
    endpoint.fake.script(Fail(429, "slow down", headers={"retry-after": "7"}))

    error = await failure_of(endpoint.adapter)

    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after_seconds == 7


async def test_context_length_errors_are_context_too_long(endpoint: Endpoint) -> None:
    message, error_type = CONTEXT_TOO_LONG[endpoint.dialect]
    endpoint.fake.script(Fail(400, message, type=error_type))

    error = await failure_of(endpoint.adapter)

    assert error.kind is ErrorKind.CONTEXT_TOO_LONG
    assert not error.retryable


async def test_exhausted_quota_is_not_a_rate_limit() -> None:
    async with serve_openai() as fake:
        fake.script(
            Fail(
                429, "You exceeded your current quota.", type="insufficient_quota", code="insufficient_quota"
            )
        )
        adapter = build_adapter(adapter_config("openai", fake.base_url))
        error = await failure_of(adapter)
        await adapter.aclose()

    assert error.kind is ErrorKind.AUTHENTICATION


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_content_filter_is_an_error_that_keeps_usage(endpoint: Endpoint, stream: bool) -> None:
    endpoint.fake.script(Reply(text="", finish_reason="content_filter", input_tokens=40, output_tokens=2))

    error = await failure_of(endpoint.adapter, stream=stream)

    assert error.kind is ErrorKind.CONTENT_FILTERED
    assert error.usage is not None
    assert error.usage.input_tokens == 40


async def test_refusal_is_content_filtered() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."},
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
    }
    async with serve_openai() as fake:
        fake.script(Raw(json.dumps(body)))
        adapter = build_adapter(adapter_config("openai", fake.base_url))
        error = await failure_of(adapter)
        await adapter.aclose()

    assert error.kind is ErrorKind.CONTENT_FILTERED
    assert "can't help" in error.message


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_hung_server_times_out_within_the_deadline(endpoint: Endpoint, stream: bool) -> None:
    endpoint.fake.script(Hang())
    deadline = 0.3

    started = time.monotonic()
    error = await failure_of(endpoint.adapter, stream=stream, timeout_seconds=deadline)
    elapsed = time.monotonic() - started

    assert error.kind is ErrorKind.TIMEOUT
    assert deadline <= elapsed < deadline + 2


async def test_the_stream_deadline_bounds_each_gap_not_the_whole_answer(endpoint: Endpoint) -> None:
    deadline = 0.6
    endpoint.fake.script(
        Reply(text="one two three four five six", chunk_chars=4, event_gap_seconds=deadline / 4)
    )

    started = time.monotonic()
    done = (await collect(endpoint.adapter, timeout_seconds=deadline))[-1]

    assert isinstance(done, StreamDone)
    assert time.monotonic() - started > deadline  # longer than the deadline, yet not cut off


async def test_a_stream_that_stalls_midway_times_out(endpoint: Endpoint) -> None:
    endpoint.fake.script(Reply(text="this answer will stall", event_gap_seconds=2))

    error = await failure_of(endpoint.adapter, stream=True, timeout_seconds=0.3)

    assert error.kind is ErrorKind.TIMEOUT


async def test_connection_refused_is_a_connection_error() -> None:
    adapter = build_adapter(adapter_config("vllm", unused_base_url()))

    error = await failure_of(adapter)
    await adapter.aclose()

    assert error.kind is ErrorKind.CONNECTION
    assert error.retryable


async def test_a_dropped_connection_is_a_connection_error(endpoint: Endpoint) -> None:
    endpoint.fake.script(Drop())

    error = await failure_of(endpoint.adapter)

    assert error.kind is ErrorKind.CONNECTION


async def test_a_stream_cut_midway_is_a_connection_error(endpoint: Endpoint) -> None:
    endpoint.fake.script(Reply(text="a long answer that will be cut", drop_after_events=3))

    error = await failure_of(endpoint.adapter, stream=True)

    assert error.kind is ErrorKind.CONNECTION


async def test_a_stream_without_its_end_is_malformed(endpoint: Endpoint) -> None:
    endpoint.fake.script(Reply(text="an answer with no finish", omit_end=True))

    error = await failure_of(endpoint.adapter, stream=True)

    assert error.kind is ErrorKind.MALFORMED_RESPONSE


@pytest.mark.parametrize(("status", "kind"), [(503, ErrorKind.OVERLOADED), (400, ErrorKind.INVALID_REQUEST)])
async def test_an_error_inside_a_stream_is_classified(
    endpoint: Endpoint, status: int, kind: ErrorKind
) -> None:
    endpoint.fake.script(StreamFail(after_events=2, status=status))

    error = await failure_of(endpoint.adapter, stream=True)

    assert error.kind is kind


@pytest.mark.parametrize(
    "body",
    [
        "this is not json",
        json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": "m"}),
        json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": "m", "choices": []}),
        json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {
                            "role": "assistant",
                            "tool_calls": [
                                {
                                    "id": "c1",
                                    "type": "function",
                                    "function": {"name": "f", "arguments": "{oops"},
                                }
                            ],
                        },
                    }
                ],
            }
        ),
        json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "m",
                "choices": [{"index": 0, "finish_reason": "sideways", "message": {"role": "assistant"}}],
            }
        ),
        json.dumps({"object": "chat.completion", "choices": [{"index": 0, "message": "just text"}]}),
        json.dumps(
            {
                "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": ["a", "b"]}}],
            }
        ),
        json.dumps(["a", "list"]),
    ],
    ids=[
        "not-json",
        "no-choices",
        "empty-choices",
        "tool-arguments-not-json",
        "unknown-finish-reason",
        "message-not-an-object",
        "content-not-text",
        "answer-not-an-object",
    ],
)
async def test_malformed_answers_are_malformed_response(endpoint: Endpoint, body: str) -> None:
    endpoint.fake.script(Raw(body))

    error = await failure_of(endpoint.adapter)

    assert error.kind is ErrorKind.MALFORMED_RESPONSE
    assert error.retryable


async def test_an_html_gateway_page_is_overloaded(endpoint: Endpoint) -> None:
    endpoint.fake.script(
        Raw("<html><body>502 Bad Gateway</body></html>", status=502, content_type="text/html")
    )

    error = await failure_of(endpoint.adapter)

    assert error.kind is ErrorKind.OVERLOADED
    assert error.status_code == 502


async def test_tools_are_refused_locally_when_the_profile_has_no_tool_calling() -> None:
    profile = PROVIDERS["llamacpp"]
    no_tools = dataclasses.replace(
        profile, capabilities=dataclasses.replace(profile.capabilities, tool_calling=False)
    )
    async with serve_openai("llamacpp") as fake:
        adapter = OpenAIChatAdapter(adapter_config("llamacpp", fake.base_url), no_tools)
        with pytest.raises(AdapterError) as caught:
            await adapter.complete(chat_request(tools=(LOOKUP_TOOL,)), timeout_seconds=5)
        await adapter.aclose()

    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert fake.requests == []


async def test_self_hosted_servers_need_no_key() -> None:
    async with serve_openai("vllm") as fake:
        fake.script(Reply(text="fine"))
        adapter = build_adapter(adapter_config("vllm", fake.base_url, api_key=None))
        response = await adapter.complete(chat_request(), timeout_seconds=5)
        await adapter.aclose()

    assert response.content == "fine"


def truncated_tool_call_body(*, stream: bool) -> str:
    """An answer cut by max_tokens inside a tool call's arguments."""
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"wo'},
    }
    if not stream:
        message = {"role": "assistant", "content": "Looking up", "tool_calls": [call]}
        choice = {"index": 0, "finish_reason": "length", "message": message}
        usage = {"prompt_tokens": 10, "completion_tokens": 256, "total_tokens": 266}
        return json.dumps(
            {"id": "c", "object": "chat.completion", "model": "m", "choices": [choice], "usage": usage}
        )
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "Looking up"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
    ]
    envelope = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    return "".join(f"data: {json.dumps(envelope | chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_tool_call_cut_by_the_token_cap_is_dropped_not_malformed(
    endpoint: Endpoint, stream: bool
) -> None:
    content_type = "text/event-stream" if stream else "application/json"
    endpoint.fake.script(Raw(truncated_tool_call_body(stream=stream), content_type=content_type))

    response = await response_of(endpoint.adapter, chat_request(tools=(LOOKUP_TOOL,)), stream=stream)

    assert response.finish_reason == "length"
    assert response.content == "Looking up"
    assert response.tool_calls == ()


async def test_a_profile_that_cannot_stream_answers_a_stream_in_one_piece() -> None:
    profile = PROVIDERS["openai-compatible"]
    no_streaming = dataclasses.replace(
        profile, capabilities=dataclasses.replace(profile.capabilities, streaming=False)
    )
    async with serve_openai() as fake:
        fake.script(Reply(text="all at once", chunk_chars=2))
        adapter = OpenAIChatAdapter(adapter_config("openai-compatible", fake.base_url), no_streaming)
        events = await collect(adapter)
        await adapter.aclose()

    assert [type(event) for event in events] == [TextDelta, StreamDone]
    assert isinstance(events[0], TextDelta)
    assert events[0].text == "all at once"
    assert fake.requests[0].json.get("stream") is not True


async def test_an_error_object_in_a_200_answer_is_classified(endpoint: Endpoint) -> None:
    endpoint.fake.script(Raw(json.dumps({"error": {"message": "Model is loading", "type": "server_error"}})))

    error = await failure_of(endpoint.adapter)

    assert error.kind is ErrorKind.OVERLOADED
    assert error.message == "Model is loading"


@pytest.mark.parametrize(
    "chunk",
    [
        {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0}]},
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": "lots"},
        },
        "this is not json",
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": 5}}]},
        {"id": "c", "object": "chat.completion.chunk", "choices": ["text"]},
        ["a", "list"],
    ],
    ids=[
        "choice-without-delta",
        "usage-not-a-number",
        "not-json",
        "content-not-text",
        "choice-not-an-object",
        "chunk-not-an-object",
    ],
)
async def test_a_malformed_stream_chunk_is_malformed_response(endpoint: Endpoint, chunk: object) -> None:
    data = chunk if isinstance(chunk, str) else json.dumps(chunk)
    endpoint.fake.script(Raw(f"data: {data}\n\ndata: [DONE]\n\n", content_type="text/event-stream"))

    error = await failure_of(endpoint.adapter, stream=True)

    assert error.kind is ErrorKind.MALFORMED_RESPONSE
