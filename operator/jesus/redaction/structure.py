"""Redaction of a structure before it is serialized: every string in it, keys included.

Redacting serialized JSON with regular expressions cannot be right: escapes hide word boundaries
(`\\nsk-...`), a match can swallow half an escape, and the result may no longer parse. Here each string
is redacted as the string it is, and serialization comes after, so the output is always valid JSON
whatever the redactor returns. A redactor with `redact_many` (the Presidio one) gets all the strings of
a structure in one call, each distinct string once: spaCy's cost is mostly per call, not per character.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

Redactor = Callable[[str], str]
"""Anything that maps a text to its redacted form; the runner and the router take one."""


@runtime_checkable
class BatchRedactor(Protocol):
    """A redactor that is cheaper on many texts at once."""

    def __call__(self, text: str) -> str: ...

    def redact_many(self, texts: Sequence[str]) -> list[str]:
        """Each of `texts` redacted, in order."""
        ...


# Deeper structures are cut off rather than walked: the walk must not raise on hostile input.
MAX_DEPTH = 200
TRUNCATED = "[REDACTED:too-deep]"
# A container met again inside itself: walking on would branch forever (a list holding itself twice
# doubled the walk at every level up to MAX_DEPTH).
CYCLE = "[REDACTED:cycle]"
# What stands for a value whose `str` raises: there is no text to redact, and redaction must not raise.
UNPRINTABLE = "[REDACTED:unprintable]"


def redact_structure(value: Any, redact: Redactor) -> Any:
    """A JSON-ready copy of `value` with `redact` applied to every string, dictionary keys included.

    Dictionaries, lists, tuples, sets, dataclasses and pydantic models (as their JSON dump) are walked;
    numbers, booleans and None are kept; enums become their value; anything else becomes its redacted
    `str`. Two keys that redact to the same text are both kept, the second with a `#2` suffix. A
    container inside itself becomes `[REDACTED:cycle]`; a value whose `str` raises, `[REDACTED:unprintable]`.
    """
    if isinstance(redact, BatchRedactor):
        # A first walk only gathers the strings; the second reads their redacted forms. A string the
        # first walk could not foresee (the text of a key that is itself a structure) is redacted alone.
        seen: dict[str, None] = {}
        _walk(value, lambda text: seen.setdefault(text) or text, 0, set())
        done = dict(zip(seen, redact.redact_many(list(seen)), strict=True))
        return _walk(value, lambda text: done[text] if text in done else redact(text), 0, set())
    return _walk(value, redact, 0, set())


def _walk(value: Any, redact: Redactor, depth: int, path: set[int]) -> Any:
    """`value` redacted; `path` holds the ids of the containers being walked above it."""
    if depth > MAX_DEPTH:
        return TRUNCATED
    if id(value) in path:
        return CYCLE
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, enum.Enum):
        return _walk(value.value, redact, depth, path)
    path.add(id(value))
    try:
        return _walk_container(value, redact, depth, path)
    finally:
        path.discard(id(value))


def _walk_container(value: Any, redact: Redactor, depth: int, path: set[int]) -> Any:
    if isinstance(value, Mapping):
        return _walk_mapping(value, redact, depth, path)
    if isinstance(value, list | tuple | set | frozenset):
        return [_walk(item, redact, depth + 1, path) for item in value]
    if isinstance(value, BaseModel):
        return _walk(value.model_dump(mode="json", by_alias=True), redact, depth, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        return _walk_mapping(fields, redact, depth, path)
    return _redact_str(value, redact)


def _redact_str(value: Any, redact: Redactor) -> str:
    try:
        text = str(value)
    except Exception:  # a broken __str__ (an exception's, often): nothing to show, nothing to leak
        return UNPRINTABLE
    return redact(text)


def _walk_mapping(value: Mapping[Any, Any], redact: Redactor, depth: int, path: set[int]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in value.items():
        name = (
            redact(key) if isinstance(key, str) else _redact_str(_walk(key, redact, depth + 1, path), redact)
        )
        unique, count = name, 1
        while unique in result:
            count += 1
            unique = f"{name}#{count}"
        result[unique] = _walk(item, redact, depth + 1, path)
    return result
