"""Request translation into each wire protocol: pure functions."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jesus_adapters import AdapterError, ErrorKind, Message, ToolCall
from jesus_adapters.anthropic_messages import to_anthropic_messages
from jesus_adapters.openai_chat import to_openai_messages
from jesus_adapters.wire import decode_arguments

CALL_A = ToolCall(id="call_a", name="lookup", arguments={"word": "haiku"})
CALL_B = ToolCall(id="call_b", name="lookup", arguments={"word": "tanka"})

words = st.text(alphabet="abc xyz", max_size=12)
call_ids = st.from_regex(r"call_[a-z0-9]{1,6}", fullmatch=True)
tool_calls = st.builds(ToolCall, id=call_ids, name=st.just("lookup"), arguments=st.just({"word": "haiku"}))
messages = st.one_of(
    st.builds(Message, role=st.sampled_from(["system", "user"]), content=words),
    st.builds(
        Message,
        role=st.just("assistant"),
        content=words,
        tool_calls=st.lists(tool_calls, max_size=2).map(tuple),
    ),
    st.builds(
        Message,
        role=st.just("tool"),
        content=words,
        tool_call_id=call_ids,
    ),
)


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


@given(st.lists(messages, max_size=12))
def test_anthropic_turns_alternate_and_lose_nothing(conversation: list[Message]) -> None:
    system, turns = to_anthropic_messages(tuple(conversation))

    roles = [turn["role"] for turn in turns]
    assert all(first != second for first, second in itertools.pairwise(roles))
    blocks = [block for turn in turns for block in turn["content"]]
    assert [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"] == [
        m.tool_call_id for m in conversation if m.role == "tool"
    ]
    assert [b["id"] for b in blocks if b["type"] == "tool_use"] == [
        call.id for m in conversation for call in m.tool_calls
    ]
    assert [b["text"] for b in blocks if b["type"] == "text"] == [
        m.content for m in conversation if m.role in ("user", "assistant") and m.content
    ]
    assert system == "\n\n".join(m.content for m in conversation if m.role == "system")
