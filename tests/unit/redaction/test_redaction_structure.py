"""Redaction on structure: every string of a record, keys included, before it is serialized."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from jesus.redaction import PresidioRedactor, redact_structure
from jesus.redaction.structure import TRUNCATED

KEY = "sk-proj-abcdefghijklmnopqrstuvwx1234"


def upper(text: str) -> str:
    return text.upper()


class Colour(enum.Enum):
    RED = "red"


@dataclass
class Call:
    adapter: str
    error: str | None
    tokens: int


class Message(BaseModel):
    role: str
    content: str


def test_every_string_is_redacted_and_other_values_are_kept() -> None:
    value = {"a": ["x", 1, 2.5, True, None, ("y",)], "b": {"c": "z"}, "e": Colour.RED}
    assert redact_structure(value, upper) == {
        "A": ["X", 1, 2.5, True, None, ["Y"]],
        "B": {"C": "Z"},
        "E": "RED",
    }


def test_dataclasses_and_pydantic_models_are_walked() -> None:
    value = [Call("gpt", f"401 for {KEY}", 3), Message(role="tool", content=f"\n{KEY}")]
    result = redact_structure(value, lambda s: s.replace(KEY, "[K]"))
    assert result == [
        {"adapter": "gpt", "error": "401 for [K]", "tokens": 3},
        {"role": "tool", "content": "\n[K]"},
    ]


def test_keys_that_redact_to_the_same_text_are_all_kept() -> None:
    result = redact_structure({"ada@example.com": 1, "bob@example.com": 2}, lambda s: "[E]")
    assert result == {"[E]": 1, "[E]#2": 2}


def test_hostile_depth_is_cut_off_rather_than_raising() -> None:
    value: list[object] = []
    for _ in range(5000):
        value = [value]
    text = json.dumps(redact_structure(value, upper)[0:1], default=str)
    assert TRUNCATED in text


def test_the_real_redactor_keeps_json_valid_where_a_regex_over_json_broke_it(
    redactor: PresidioRedactor,
) -> None:
    record = {"toolCalls": [{"result": f"ok\n{KEY}\nada.lovelace@example.com\n"}], KEY: "as a key"}
    text = json.dumps(redact_structure(record, redactor))
    parsed = json.loads(text)
    assert KEY not in text
    assert "ada.lovelace@example.com" not in text
    assert parsed["toolCalls"][0]["result"] == "ok\n[REDACTED:openai-key]\n[REDACTED:email]\n"
    assert parsed["[REDACTED:openai-key]"] == "as a key"


class CountingRedactor:
    """A batch redactor that records how it was called."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.alone: list[str] = []

    def __call__(self, text: str) -> str:
        self.alone.append(text)
        return text.upper()

    def redact_many(self, texts: Sequence[str]) -> list[str]:
        self.batches.append(list(texts))
        return [text.upper() for text in texts]


def test_a_batch_redactor_gets_every_distinct_string_of_a_structure_in_one_call() -> None:
    counting = CountingRedactor()
    record = {
        "task": "hi",
        "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "ok"}],
    }
    assert redact_structure(record, counting) == redact_structure(record, upper)
    assert len(counting.batches) == 1
    assert sorted(counting.batches[0]) == sorted(
        {"task", "hi", "messages", "role", "user", "content", "tool", "ok"}
    )
    assert counting.alone == []


def test_a_string_the_gathering_walk_could_not_foresee_is_redacted_alone() -> None:
    counting = CountingRedactor()
    # A key that is itself a structure is written as the text of its redacted form.
    assert redact_structure({("a", "b"): "c"}, counting) == {"['A', 'B']": "C"}
    assert counting.alone == ["['A', 'B']"]
