"""The Anthropic adapter against a local fake of the Messages API, with the official SDK as client."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

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
    serve_anthropic,
    unused_base_url,
)
from tests.providers.calls import collect, failure_of, response_of

from jesus_adapters import (
    AdapterConfigError,
    AdapterError,
    ErrorKind,
    ModelAdapter,
    StreamDone,
    TextDelta,
    build_adapter,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with serve_anthropic() as server:
        yield server


@pytest.fixture
async def adapter(fake: FakeProvider) -> AsyncIterator[ModelAdapter]:
    built = build_adapter(adapter_config("anthropic", fake.base_url, model="claude-haiku-4-5"))
    yield built
    await built.aclose()


async def test_complete_returns_text_usage_and_model(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(Reply(text="Five, seven, five.", input_tokens=25, output_tokens=6))

    response = await adapter.complete(chat_request(), timeout_seconds=5)

    assert response.content == "Five, seven, five."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (25, 6)
    assert response.finish_reason == "stop"
    assert response.provider == "anthropic"
    assert response.model == "claude-haiku-4-5"


async def test_request_uses_the_messages_api_shape(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(Reply())

    await adapter.complete(chat_request(max_tokens=99, stop=("END",)), timeout_seconds=5)

    recorded = fake.requests[0]
    assert recorded.path == "/v1/messages"
    # This SDK generation sends the key as a bearer token; older ones used x-api-key.
    assert "sk-test" in recorded.headers.get("x-api-key", recorded.headers.get("authorization", ""))
    assert "anthropic-version" in recorded.headers
    sent = recorded.json
    assert sent["system"] == "Answer briefly."
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "What is a haiku?"}]}]
    assert sent["max_tokens"] == 99
    assert sent["stop_sequences"] == ["END"]
    assert sent["model"] == "claude-haiku-4-5"


async def test_tools_and_tool_results_go_out_as_blocks(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(Reply(text="A short Japanese poem."))

    await adapter.complete(tool_round_trip_request(), timeout_seconds=5)

    sent = fake.requests[0].json
    assert sent["tools"] == [
        {
            "name": LOOKUP_TOOL.name,
            "description": LOOKUP_TOOL.description,
            "input_schema": LOOKUP_TOOL.input_schema,
        }
    ]
    assert [turn["role"] for turn in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == [
        {"type": "text", "text": "Let me look that up."},
        {"type": "tool_use", "id": "call_lookup_1", "name": "lookup", "input": {"word": "haiku"}},
    ]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_lookup_1", "content": "a short Japanese poem"}
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_tool_calls_come_back_decoded(fake: FakeProvider, adapter: ModelAdapter, stream: bool) -> None:
    calls = (
        FakeToolCall("toolu_01", "lookup", {"word": "haiku"}),
        FakeToolCall("toolu_02", "lookup", {"word": "tanka", "lines": [5, 7, 5, 7, 7]}),
    )
    fake.script(Reply(text="Looking both up.", tool_calls=calls, chunk_chars=3))
    request = chat_request(tools=(LOOKUP_TOOL,))

    response = await response_of(adapter, request, stream=stream)

    assert response.finish_reason == "tool_calls"
    assert response.content == "Looking both up."
    assert [(call.id, call.name, call.arguments) for call in response.tool_calls] == [
        (call.id, call.name, call.arguments) for call in calls
    ]


async def test_stream_deltas_add_up_and_usage_comes_from_the_events(
    fake: FakeProvider, adapter: ModelAdapter
) -> None:
    text = "An old silent pond, a frog jumps into the pond."
    fake.script(Reply(text=text, input_tokens=33, output_tokens=14, chunk_chars=6))

    events = await collect(adapter)

    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert len(deltas) > 1
    assert "".join(delta.text for delta in deltas) == text
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert done.response.content == text
    assert (done.response.usage.input_tokens, done.response.usage.output_tokens) == (33, 14)
    assert fake.requests[0].json["stream"] is True


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ErrorKind.INVALID_REQUEST),
        (401, ErrorKind.AUTHENTICATION),
        (403, ErrorKind.AUTHENTICATION),
        (404, ErrorKind.INVALID_REQUEST),
        (413, ErrorKind.INVALID_REQUEST),
        (429, ErrorKind.RATE_LIMITED),
        (500, ErrorKind.OVERLOADED),
        (503, ErrorKind.OVERLOADED),
        (529, ErrorKind.OVERLOADED),
    ],
)
async def test_error_statuses_map_to_kinds(
    fake: FakeProvider, adapter: ModelAdapter, status: int, kind: ErrorKind
) -> None:
    fake.script(Fail(status, f"failure number {status}"))

    error = await failure_of(adapter)

    assert error.kind is kind
    assert error.status_code == status
    assert error.message == f"failure number {status}"
    assert len(fake.requests) == 1  # the SDK's own retries are off


async def test_rate_limit_carries_retry_after(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(
        Fail(429, "Number of request tokens has exceeded your rate limit", headers={"retry-after": "12"})
    )

    error = await failure_of(adapter)

    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after_seconds == 12


async def test_prompt_too_long_is_context_too_long(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(Fail(400, "prompt is too long: 208310 tokens > 200000 maximum"))

    error = await failure_of(adapter)

    assert error.kind is ErrorKind.CONTEXT_TOO_LONG


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_refusal_is_content_filtered_with_usage(
    fake: FakeProvider, adapter: ModelAdapter, stream: bool
) -> None:
    fake.script(Reply(text="", finish_reason="refusal", input_tokens=50, output_tokens=3))

    error = await failure_of(adapter, stream=stream)

    assert error.kind is ErrorKind.CONTENT_FILTERED
    assert error.usage is not None
    assert (error.usage.input_tokens, error.usage.output_tokens) == (50, 3)


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [
        ("overloaded_error", ErrorKind.OVERLOADED),
        ("api_error", ErrorKind.OVERLOADED),
        ("rate_limit_error", ErrorKind.RATE_LIMITED),
        ("invalid_request_error", ErrorKind.INVALID_REQUEST),
    ],
)
async def test_an_error_event_inside_a_stream_is_classified_by_type(
    fake: FakeProvider, adapter: ModelAdapter, error_type: str, kind: ErrorKind
) -> None:
    fake.script(StreamFail(after_events=3, type=error_type, message="Overloaded"))

    error = await failure_of(adapter, stream=True)

    assert error.kind is kind


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_hung_server_times_out_within_the_deadline(
    fake: FakeProvider, adapter: ModelAdapter, stream: bool
) -> None:
    fake.script(Hang())
    deadline = 0.3

    started = time.monotonic()
    error = await failure_of(adapter, stream=stream, timeout_seconds=deadline)
    elapsed = time.monotonic() - started

    assert error.kind is ErrorKind.TIMEOUT
    assert deadline <= elapsed < deadline + 2


async def test_a_stream_that_stalls_midway_times_out(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(Reply(text="this answer will stall", event_gap_seconds=2))

    error = await failure_of(adapter, stream=True, timeout_seconds=0.3)

    assert error.kind is ErrorKind.TIMEOUT


async def test_connection_refused_is_a_connection_error() -> None:
    adapter = build_adapter(adapter_config("anthropic", unused_base_url(base_path="")))

    error = await failure_of(adapter)
    await adapter.aclose()

    assert error.kind is ErrorKind.CONNECTION


async def test_a_dropped_connection_is_a_connection_error(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(Drop())

    error = await failure_of(adapter)

    assert error.kind is ErrorKind.CONNECTION


async def test_a_stream_cut_midway_is_a_connection_error(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(Reply(text="a long answer that will be cut", drop_after_events=4))

    error = await failure_of(adapter, stream=True)

    assert error.kind is ErrorKind.CONNECTION


async def test_a_stream_without_message_stop_is_malformed(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(Reply(text="an answer that never stops", omit_end=True))

    error = await failure_of(adapter, stream=True)

    assert error.kind is ErrorKind.MALFORMED_RESPONSE


async def test_an_event_that_is_not_json_is_malformed(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(Raw("event: message_start\ndata: {not json\n\n", content_type="text/event-stream"))

    error = await failure_of(adapter, stream=True)

    assert error.kind is ErrorKind.MALFORMED_RESPONSE


@pytest.mark.parametrize(
    "body",
    [
        "this is not json",
        json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "m"}),
        json.dumps(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "sideways",
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        ),
    ],
    ids=["not-json", "no-content", "unknown-stop-reason"],
)
async def test_malformed_answers_are_malformed_response(
    fake: FakeProvider, adapter: ModelAdapter, body: str
) -> None:
    fake.script(Raw(body))

    error = await failure_of(adapter)

    assert error.kind is ErrorKind.MALFORMED_RESPONSE


async def test_a_missing_key_is_refused_before_any_call() -> None:
    with pytest.raises(AdapterConfigError, match="API key"):
        build_adapter(adapter_config("anthropic", None, api_key=None))


async def test_errors_are_adapter_errors_never_sdk_errors(fake: FakeProvider, adapter: ModelAdapter) -> None:
    fake.script(Fail(529, "Overloaded"))

    with pytest.raises(AdapterError) as caught:
        await adapter.complete(chat_request(), timeout_seconds=5)

    assert type(caught.value) is AdapterError
    assert caught.value.kind is ErrorKind.OVERLOADED


async def test_a_tool_call_cut_by_max_tokens_is_dropped_not_malformed(
    fake: FakeProvider, adapter: ModelAdapter
) -> None:
    message: dict[str, object] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }
    events = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"wo'},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens"},
                "usage": {"output_tokens": 256},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    fake.script(Raw(body, content_type="text/event-stream"))

    done = (await collect(adapter, chat_request(tools=(LOOKUP_TOOL,))))[-1]

    assert isinstance(done, StreamDone)
    assert done.response.finish_reason == "length"
    assert done.response.tool_calls == ()
    assert done.response.usage.output_tokens == 256


async def test_extra_headers_are_sent(fake: FakeProvider) -> None:
    adapter = build_adapter(adapter_config("anthropic", fake.base_url, extra_headers={"X-Run": "run-7"}))
    fake.script(Reply())

    await adapter.complete(chat_request(), timeout_seconds=5)
    await adapter.aclose()

    assert fake.requests[0].headers["x-run"] == "run-7"


@pytest.mark.parametrize(
    "event",
    [
        ("message_start", {"type": "message_start"}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}},
        ),
    ],
    ids=["message-start-without-message", "delta-without-index"],
)
async def test_a_malformed_stream_event_is_malformed_response(
    fake: FakeProvider, adapter: ModelAdapter, event: tuple[str, dict[str, object]]
) -> None:
    name, data = event
    fake.script(Raw(f"event: {name}\ndata: {json.dumps(data)}\n\n", content_type="text/event-stream"))

    error = await failure_of(adapter, stream=True)

    assert error.kind is ErrorKind.MALFORMED_RESPONSE


async def test_an_account_out_of_credit_is_an_authentication_failure(
    fake: FakeProvider, adapter: ModelAdapter
) -> None:
    fake.script(Fail(400, "Your credit balance is too low to access the Anthropic API."))

    error = await failure_of(adapter)

    assert error.kind is ErrorKind.AUTHENTICATION
    assert not error.retryable
