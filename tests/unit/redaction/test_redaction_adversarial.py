"""Redaction against text built to slip past it or to stall it: secrets split by invisible characters or
written in compatibility forms, credentials in an Authorization header, and long runs of near-matches
that made an expression backtrack for minutes."""

from __future__ import annotations

import json
import time

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from jesus.redaction import SECRET_PATTERNS, PresidioRedactor, redact_structure
from jesus.redaction.folding import fold
from jesus.redaction.patterns import ADDRESS_PATTERN, CUED_NAME_PATTERN
from jesus.redaction.text import _CANDIDATE, _PII_TRIGGER

from .test_redaction_properties import SETTINGS

KEY = "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2"
EXPRESSIONS = [
    *((p.kind, regex.compile(p.expression)) for p in SECRET_PATTERNS),
    ("address", regex.compile(ADDRESS_PATTERN)),
    ("cued-name", regex.compile(CUED_NAME_PATTERN)),
    ("pii-trigger", _PII_TRIGGER),
    ("name-candidate", _CANDIDATE),
]
# Runs of what an expression starts with, or continues with, and never finishes.
NEAR_MATCHES = [
    "xoxb-", "xoxb-a-", "eyJaaaaaaaa", "eyJaaaaaaaa.eyJaaaa", "sk-", " ", "token =", "secret:", "://a:b",
    "-----BEGIN RSA PRIVATE KEY-----", "1 Aaaa Bbbb ", "a@b", "1 ", "1", "a:", "1.", "AKIA", "Dear ",
    "Aa-", "aws_secret_key=", "Bearer ", "ghp_", "Authorization: ", "Authorization: Basic ", "Aaaa Bbbb ",
]  # fmt: skip
SIZE = 200_000
# About a second per megabyte, with room for a busy machine: of this thread's CPU time, which other
# processes on a loaded machine do not inflate as they do the wall clock's. The wall-clock timeout only
# stops a runaway expression.
LIMIT_SECONDS = 0.5
WALL_TIMEOUT_SECONDS = 20 * LIMIT_SECONDS


@pytest.mark.parametrize(("kind", "expression"), EXPRESSIONS, ids=[kind for kind, _ in EXPRESSIONS])
def test_no_expression_backtracks_on_long_near_matches(kind: str, expression: regex.Pattern[str]) -> None:
    # slack-token's nested `(?:[0-9A-Za-z]+-)*` took over a minute on 1 MB of `xoxb-`; jwt scanned to
    # the end of the run from every `eyJ` in it.
    for unit in NEAR_MATCHES:
        text = (unit * (SIZE // len(unit) + 1))[:SIZE]
        started = time.thread_time()
        try:
            for _ in expression.finditer(text, timeout=WALL_TIMEOUT_SECONDS):
                pass
        except TimeoutError:
            pytest.fail(f"{kind} timed out on {unit!r} * {SIZE // len(unit)}")
        elapsed = time.thread_time() - started
        assert elapsed < LIMIT_SECONDS, f"{kind} took {elapsed:.2f}s on {unit!r} * {SIZE // len(unit)}"


@pytest.mark.parametrize(
    "disguised",
    [
        KEY[:12] + "\u200b" + KEY[12:],  # zero-width space
        KEY[:10] + "\u00ad" + KEY[10:],  # soft hyphen
        KEY[:8] + "\u2060\ufeff" + KEY[8:],  # word joiner, BOM
        KEY[:9] + "\x00" + KEY[9:],  # NUL
        "\uff53\uff4b" + KEY[2:],  # fullwidth `sk`
        KEY.replace("A1", "\U0001d400\U0001d7cf"),  # mathematical bold A and 1
    ],
    ids=["zero-width", "soft-hyphen", "joiner-bom", "nul", "fullwidth", "math-bold"],
)
def test_a_secret_disguised_with_invisible_or_compatibility_characters_is_removed(
    redactor: PresidioRedactor, disguised: str
) -> None:
    redacted = redactor(f"before {disguised} after")
    assert redacted == "before [REDACTED:openai-key] after"


def test_folding_keeps_the_text_around_a_disguised_secret(redactor: PresidioRedactor) -> None:
    text = "caf\u00e9 \u200b\ufb01le: " + KEY[:5] + "\u200b" + KEY[5:] + " \u00bd done"
    assert redactor(text) == "caf\u00e9 \u200b\ufb01le: [REDACTED:openai-key] \u00bd done"


def test_text_that_needs_no_folding_is_not_folded() -> None:
    assert fold("plain ascii") is None
    assert fold("d\u00e9j\u00e0 vu, \u65e5\u672c") is None


@given(text=st.text(max_size=200))
@SETTINGS
def test_folding_maps_every_folded_character_back_into_the_text(text: str) -> None:
    folded = fold(text)
    if folded is not None:
        view, origin = folded
        assert len(view) == len(origin)
        assert origin == sorted(origin)
        assert all(0 <= index < len(text) for index in origin)


@pytest.mark.parametrize(
    "header",
    [
        "Authorization: Basic dXNlcjpodW50ZXIycGFzcw==",
        '{"Authorization": "Basic dXNlcjpodW50ZXIycGFzcw=="}',
        "proxy-authorization: basic dXNlcjpodW50ZXIycGFzcw",
        "authorization=Token dXNlcjpodW50ZXIycGFzcw",
    ],
)
def test_credentials_in_an_authorization_header_are_removed(redactor: PresidioRedactor, header: str) -> None:
    redacted = redactor(header)
    assert "dXNlcjpodW50ZXIycGFzcw" not in redacted
    assert "[REDACTED:authorization]" in redacted


def test_the_word_basic_alone_is_not_a_credential(redactor: PresidioRedactor) -> None:
    text = "Basic functionality works; basic authentication is configured elsewhere."
    assert redactor(text) == text


def test_a_disguised_secret_in_a_key_and_a_bytes_value_leaves_valid_json(redactor: PresidioRedactor) -> None:
    disguised = KEY[:12] + "\u200b" + KEY[12:]
    record = {disguised: [("\n" + KEY).encode()], "e": ValueError(disguised)}
    serialized = json.dumps(redact_structure(record, redactor))
    assert KEY[12:] not in serialized
    json.loads(serialized)


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_a_value_whose_str_raises_is_named_not_raised(redactor: PresidioRedactor) -> None:
    redacted = redact_structure({"a": _Unprintable(), _Unprintable(): 1}, redactor)
    assert redacted == {"a": "[REDACTED:unprintable]", "[REDACTED:unprintable]": 1}


def test_a_structure_that_contains_itself_is_cut_at_the_cycle(redactor: PresidioRedactor) -> None:
    # Two references to itself made the walk branch twice per level: 2**200 steps before the depth cap.
    loop: list[object] = [KEY]
    loop += [loop, loop]
    mapping: dict[str, object] = {"key": KEY}
    mapping["self"] = mapping
    redacted = redact_structure({"list": loop, "map": mapping}, redactor)
    assert redacted == {
        "list": ["[REDACTED:openai-key]", "[REDACTED:cycle]", "[REDACTED:cycle]"],
        "map": {"key": "[REDACTED:openai-key]", "self": "[REDACTED:cycle]"},
    }


def test_a_value_shared_by_two_branches_is_not_a_cycle(redactor: PresidioRedactor) -> None:
    shared = {"k": "v"}
    assert redact_structure([shared, shared], redactor) == [{"k": "v"}, {"k": "v"}]


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("redis://:hunter2hunter2@cache:6379", "hunter2hunter2"),  # a password with no user name
        ("AccountKey=abc123def456ghi789jkl012mno345pqr678stu901vwx234yz==;", "abc123def456ghi789"),
        ("Authorization: 0123456789abcdef0123456789abcdef", "0123456789abcdef"),  # a raw key, no scheme
    ],
)
def test_credentials_careless_users_paste_are_removed(
    redactor: PresidioRedactor, text: str, gone: str
) -> None:
    assert gone not in redactor(text)


@pytest.mark.parametrize(
    "prose",
    ["Authorization: required for this endpoint", "authorization: missing credentials, try again"],
)
def test_prose_about_authorization_is_not_a_credential(redactor: PresidioRedactor, prose: str) -> None:
    assert redactor(prose) == prose
