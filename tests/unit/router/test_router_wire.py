"""The Chat Completions wire format the router speaks: careless and hostile request bodies are refused
with a message naming the field; what the runner sends is what the router reads back."""

from __future__ import annotations

from typing import Any

import pytest

from jesus.router.wire import (
    DEFAULT_MAX_TOKENS,
    WireError,
    completion_body,
    parse_chat_request,
    parse_completion,
    request_body,
)
from jesus_adapters.types import ChatRequest, ChatResponse, Message, ToolCall, ToolSpec, Usage

USER = {"role": "user", "content": "hi"}


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "any", "messages": [USER], **extra}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([USER], "the request body must be a JSON object"),
        ({"messages": []}, "messages: a non-empty list is required"),
        ({"messages": "hi"}, "messages: a non-empty list is required"),
        ({"messages": ["hi"]}, "messages[0]: an object is required"),
        ({"messages": [USER, {"role": "root", "content": "x"}]}, "messages[1].role: one of system, user"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content: a string or a list"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content: only text parts are supported",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id: required"),
        (
            {"messages": [{"role": "assistant", "tool_calls": ["x"]}]},
            "messages[0].tool_calls[0]: an object with a function is required",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}
                ]
            },
            "messages[0].tool_calls[0].function.arguments: not JSON",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}
                ]
            },
            "messages[0].tool_calls[0].function: a name and JSON object arguments are required",
        ),
        (body(tools=[{"type": "retrieval"}]), "tools[0]: only function tools are supported"),
        (body(tools=[{"type": "function", "function": {}}]), "tools[0].function.name: required"),
        (
            body(tools=[{"function": {"name": "f", "parameters": "any"}}]),
            "tools[0].function.parameters: a JSON Schema object is required",
        ),
        (body(max_tokens=0), "max_tokens: a positive integer is required"),
        (body(max_tokens=True), "max_tokens: a positive integer is required"),
        (body(max_completion_tokens="10"), "max_tokens: a positive integer is required"),
        (body(stop=[1, 2]), "stop: a string or a list of strings is required"),
        (body(stop={"x": 1}), "stop: a string or a list of strings is required"),
        (body(stream="yes"), "stream: true or false is required"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(raw: Any, message: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_chat_request(raw)
    assert str(caught.value).startswith(message)


def test_a_lenient_request_is_read_as_clients_send_it() -> None:
    request, stream = parse_chat_request(
        {
            "messages": [
                {
                    "role": "developer",
                    "content": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}],
                },
                {"role": "user", "content": None},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c1", "function": {"name": "look", "arguments": {"q": 1}}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "found"},
            ],
            "tools": [{"function": {"name": "look"}}],
            "max_completion_tokens": 7,
            "max_tokens": 99,  # the newer field wins
            "stop": "END",
            "stream": True,
        }
    )
    assert stream is True
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
    assert request.messages[0].content == "be brief" and request.messages[1].content == ""
    assert request.messages[2].tool_calls == (ToolCall(id="c1", name="look", arguments={"q": 1}),)
    assert request.tools == (ToolSpec("look", "", {"type": "object", "properties": {}}),)
    assert (request.max_tokens, request.stop) == (7, ("END",))


def test_without_max_tokens_the_default_applies_and_no_stream() -> None:
    request, stream = parse_chat_request(body())
    assert (request.max_tokens, request.stop, stream) == (DEFAULT_MAX_TOKENS, (), False)


def test_what_the_runner_sends_the_router_reads_back() -> None:
    sent = ChatRequest(
        messages=(
            Message("system", "rules"),
            Message("assistant", "", tool_calls=(ToolCall("c9", "grep", {"pattern": "x"}),)),
            Message("tool", "3 hits", tool_call_id="c9"),
        ),
        tools=(
            ToolSpec(
                "grep", "search files", {"type": "object", "properties": {"pattern": {"type": "string"}}}
            ),
        ),
        max_tokens=55,
        stop=("STOP", "END"),
    )
    wire = request_body(sent, model="route-a")
    assert wire["model"] == "route-a"
    read, stream = parse_chat_request(wire)
    assert read == sent and stream is False


def test_a_completion_round_trips_with_its_record() -> None:
    response = ChatResponse(
        "", (ToolCall("c1", "grep", {"pattern": "x"}),), "tool_calls", Usage(12, 3), "m-1", "openai"
    )
    wire = completion_body(response, {"adapter": "a", "provider": "openai"}, completion_id="cmpl-1")
    assert wire["jesus"] == {"adapter": "a", "provider": "openai"}
    assert parse_completion(wire) == response


def test_an_unknown_finish_reason_and_missing_usage_read_as_defaults() -> None:
    parsed = parse_completion({"choices": [{"message": {"content": None}, "finish_reason": "eaten_by_cat"}]})
    assert (parsed.content, parsed.finish_reason, parsed.usage, parsed.provider) == (
        "",
        "stop",
        Usage(),
        "router",
    )
    with pytest.raises(KeyError):
        parse_completion({"choices": [{}]})
