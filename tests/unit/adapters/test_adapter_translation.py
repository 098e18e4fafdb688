"""Request translation into each wire protocol: pure functions."""

from __future__ import annotations

import json

import pytest

from jesus_adapters import AdapterError, ErrorKind, Message, ToolCall
from jesus_adapters.anthropic_messages import to_anthropic_messages
from jesus_adapters.openai_chat import decode_arguments, to_openai_messages

CALL_A = ToolCall(id="call_a", name="lookup", arguments={"word": "haiku"})
CALL_B = ToolCall(id="call_b", name="lookup", arguments={"word": "tanka"})


def test_anthropic_gets_system_apart_and_all_tool_results_in_one_user_turn() -> None:
    system, turns = to_anthropic_messages(
        (
            Message("system", "Be brief."),
            Message("system", "Use tools."),
            Message("user", "Define two words."),
            Message("assistant", "", tool_calls=(CALL_A, CALL_B)),
            Message("tool", "a short poem", tool_call_id="call_a"),
            Message("tool", "a longer poem", tool_call_id="call_b"),
            Message("user", "Thanks; compare them."),
        )
    )

    assert system == "Be brief.\n\nUse tools."
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "call_a", "name": "lookup", "input": {"word": "haiku"}},
        {"type": "tool_use", "id": "call_b", "name": "lookup", "input": {"word": "tanka"}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_a", "content": "a short poem"},
        {"type": "tool_result", "tool_use_id": "call_b", "content": "a longer poem"},
        {"type": "text", "text": "Thanks; compare them."},
    ]


def test_anthropic_drops_empty_messages() -> None:
    _, turns = to_anthropic_messages(
        (Message("user", "hi"), Message("assistant", ""), Message("user", "again"))
    )

    assert turns == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}]}
    ]


def test_openai_keeps_one_message_per_message_and_encodes_arguments() -> None:
    messages = to_openai_messages(
        (
            Message("user", "Define haiku."),
            Message("assistant", "", tool_calls=(CALL_A,)),
            Message("tool", "a short poem", tool_call_id="call_a"),
        )
    )

    assert [message["role"] for message in messages] == ["user", "assistant", "tool"]
    assert messages[1]["content"] is None
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == CALL_A.arguments
    assert messages[2] == {"role": "tool", "tool_call_id": "call_a", "content": "a short poem"}


@pytest.mark.parametrize(("raw", "decoded"), [("", {}), (None, {}), ('{"a": [1, 2]}', {"a": [1, 2]})])
def test_tool_arguments_decode(raw: str | None, decoded: dict[str, object]) -> None:
    assert decode_arguments(raw, provider="p", tool="t") == decoded


@pytest.mark.parametrize("raw", ["{oops", "[1, 2]", '"text"'])
def test_tool_arguments_that_are_not_an_object_are_malformed(raw: str) -> None:
    with pytest.raises(AdapterError) as caught:
        decode_arguments(raw, provider="p", tool="lookup")

    assert caught.value.kind is ErrorKind.MALFORMED_RESPONSE
    assert "'lookup'" in caught.value.message
