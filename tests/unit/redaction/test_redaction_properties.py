"""Properties over arbitrary strings, nested records and line breaks: redaction never raises, never
breaks JSON, and removes every planted secret wherever it sits (line start, nested lists, keys)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.redaction_corpus import SECRET_KINDS, make_value

from jesus.redaction import PresidioRedactor, redact_structure

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# What separates a planted secret from the text around it in transcripts and tool output: a secret is
# a token, so something that is not a letter or digit (or the start or end of the string) bounds it.
SEPARATORS_LIST = [" ", "\n", "\r\n", "\t", '"', "'", "(", ")", ",", ":", "=", "\\n", "[", "]"]
SEPARATORS = st.sampled_from(SEPARATORS_LIST)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


@SETTINGS
@given(value=json_values)
def test_arbitrary_records_stay_valid_json(redactor: PresidioRedactor, value: Any) -> None:
    redacted = redact_structure(value, redactor)
    assert json.loads(json.dumps(redacted)) == redacted


@SETTINGS
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_arbitrary_text_never_raises_and_stays_a_string(redactor: PresidioRedactor, text: str) -> None:
    assert isinstance(redactor(text), str)


# Every code point: lone surrogates (a tool's output decoded with surrogateescape), format characters
# (zero-width, soft hyphen, BOM) and NUL, which the folded view of a text handles specially.
ANY_CODE_POINT = st.characters(exclude_categories=()) | st.characters(
    min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()
)


@SETTINGS
@given(text=st.text(alphabet=ANY_CODE_POINT, max_size=200), key=st.text(alphabet=ANY_CODE_POINT, max_size=20))
def test_any_code_point_never_raises_and_serializes_as_json(
    redactor: PresidioRedactor, text: str, key: str
) -> None:
    redacted = redact_structure({key: [text, "\u200b".join([text, key])]}, redactor)
    assert json.loads(json.dumps(redacted)) == redacted


@st.composite
def planted_records(draw: st.DrawFn) -> tuple[Any, str]:
    """A nested record with one secret somewhere in it (a value, a list item or a key)."""
    kind = draw(st.sampled_from(SECRET_KINDS))
    secret = make_value(kind, random.Random(draw(st.integers(0, 2**32))))
    if kind == "bearer-token":  # a bearer token is a secret by the word before it
        secret = f"Bearer {secret}"
    before = draw(st.text(max_size=20)) + draw(SEPARATORS)
    after = draw(SEPARATORS) + draw(st.text(max_size=20))
    text = before + secret + after
    place = draw(st.sampled_from(["value", "list", "key", "deep"]))
    record: Any = {
        "value": {"content": text},
        "list": {"items": ["x", text, 3]},
        "key": {text: "v"},
        "deep": [[{"a": [[text]]}]],
    }[place]
    return record, secret


@SETTINGS
@given(planted=planted_records())
def test_a_planted_secret_is_removed_wherever_it_sits(
    redactor: PresidioRedactor, planted: tuple[Any, str]
) -> None:
    record, secret = planted
    serialized = json.dumps(redact_structure(record, redactor), ensure_ascii=False)
    json.loads(serialized)
    # A private key's lines, a JWT's parts: no piece long enough to use survives.
    for piece in secret.removeprefix("Bearer ").replace("\n", ".").split("."):
        if len(piece) >= 16:
            assert piece not in serialized


@pytest.mark.parametrize("separator", SEPARATORS_LIST)
@pytest.mark.parametrize("kind", SECRET_KINDS)
def test_every_secret_kind_is_found_after_every_separator(
    redactor: PresidioRedactor, kind: str, separator: str
) -> None:
    secret = make_value(kind, random.Random(kind))
    if kind == "bearer-token":
        secret = f"Bearer {secret}"
    text = f"line one{separator}{secret}{separator}\nline three"
    redacted = json.dumps(redact_structure({"out": [text]}, redactor))
    assert f"[REDACTED:{kind}]" in redacted
    for piece in secret.removeprefix("Bearer ").replace("\n", ".").split("."):
        if len(piece) >= 16:
            assert piece not in redacted
