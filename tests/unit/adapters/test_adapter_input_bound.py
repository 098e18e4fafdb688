"""The upper bound of a request's input tokens (ADR 14): bytes of every text sent, plus template overhead."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from tests.builders.chat import LOOKUP_TOOL, chat_request, tool_round_trip_request

from jesus_adapters import Message, ToolCall
from jesus_adapters.estimate import (
    MESSAGE_OVERHEAD_TOKENS,
    REQUEST_OVERHEAD_TOKENS,
    TOOL_OVERHEAD_TOKENS,
    TOOLS_PREAMBLE_TOKENS,
    estimate_input_tokens,
    input_tokens_upper_bound,
    text_tokens_upper_bound,
)


def test_a_plain_prompt_is_bounded_by_its_bytes_and_the_template() -> None:
    request = chat_request(Message("user", "hello"))
    assert input_tokens_upper_bound(request) == REQUEST_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS + 5


def test_characters_that_take_several_bytes_count_every_byte() -> None:
    # A character count at 3 a token would say 10 tokens; a tokenizer may need one per byte.
    assert text_tokens_upper_bound("\N{SLIGHTLY SMILING FACE}" * 30) == 120
    assert text_tokens_upper_bound("\u65e5\u672c\u8a9e") == 9


def test_a_character_that_normalisation_expands_counts_as_its_expansion() -> None:
    # U+FDFA is 3 bytes but 18 letters (33 bytes) under NFKC, which some tokenizers apply first.
    assert text_tokens_upper_bound("\ufdfa") == 33


def test_a_lone_surrogate_does_not_raise() -> None:
    assert text_tokens_upper_bound("a\ud800b") == 5


def test_tools_add_their_preamble_names_descriptions_and_schemas() -> None:
    bare = input_tokens_upper_bound(chat_request())
    with_tool = input_tokens_upper_bound(chat_request(tools=(LOOKUP_TOOL,)))
    schema = len(json.dumps(LOOKUP_TOOL.input_schema, ensure_ascii=True, indent=2, sort_keys=True))
    text = len(LOOKUP_TOOL.name) + len(LOOKUP_TOOL.description)
    assert with_tool - bare == TOOLS_PREAMBLE_TOKENS + TOOL_OVERHEAD_TOKENS + text + schema


def test_tool_calls_count_ids_names_and_arguments_as_sent() -> None:
    call = ToolCall(id="call_1", name="lookup", arguments={"word": "caf\u00e9"})
    plain = input_tokens_upper_bound(chat_request(Message("assistant", "")))
    with_call = input_tokens_upper_bound(chat_request(Message("assistant", "", tool_calls=(call,))))
    # The arguments as an adapter sends them (json.dumps, ASCII-escaped) fit inside what is counted.
    assert with_call - plain >= MESSAGE_OVERHEAD_TOKENS + 6 + 6 + len(json.dumps(call.arguments))


@given(st.text(), st.text())
def test_the_bound_is_never_below_the_estimate(system: str, user: str) -> None:
    request = chat_request(Message("system", system), Message("user", user))
    assert input_tokens_upper_bound(request) >= estimate_input_tokens(request)
    assert input_tokens_upper_bound(request) >= len(system.encode("utf-8", "surrogatepass"))


def test_a_tool_round_trip_is_bounded_above_its_estimate() -> None:
    request = tool_round_trip_request()
    assert input_tokens_upper_bound(request) > estimate_input_tokens(request)
