"""Error classification, Retry-After parsing and token estimates: pure functions, table-driven."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders.chat import LOOKUP_TOOL, chat_request

from jesus_adapters import ErrorKind, ErrorWording
from jesus_adapters.classify import ErrorDetail, classify_failure, parse_retry_after
from jesus_adapters.estimate import CHARS_PER_TOKEN, estimate_input_tokens, estimate_tokens, estimate_usage
from jesus_adapters.registry import PROVIDERS

OPENAI = PROVIDERS["openai"].error_wording
NO_WORDING = ErrorWording()


@pytest.mark.parametrize(
    ("status", "body", "wording", "kind"),
    [
        (400, {"error": {"message": "bad"}}, NO_WORDING, ErrorKind.INVALID_REQUEST),
        (
            400,
            {"error": {"code": "context_length_exceeded", "message": "x"}},
            OPENAI,
            ErrorKind.CONTEXT_TOO_LONG,
        ),
        (400, {"error": {"code": "content_filter", "message": "x"}}, OPENAI, ErrorKind.CONTENT_FILTERED),
        (400, {"error": {"code": "context_length_exceeded"}}, NO_WORDING, ErrorKind.INVALID_REQUEST),
        (402, {}, NO_WORDING, ErrorKind.AUTHENTICATION),
        (418, {}, NO_WORDING, ErrorKind.INVALID_REQUEST),
        (429, {"error": {"type": "insufficient_quota"}}, OPENAI, ErrorKind.AUTHENTICATION),
        (429, {"error": {"type": "requests"}}, OPENAI, ErrorKind.RATE_LIMITED),
        (499, {}, NO_WORDING, ErrorKind.CONNECTION),
        (504, {}, NO_WORDING, ErrorKind.OVERLOADED),
        (529, {"type": "error", "error": {"type": "overloaded_error"}}, NO_WORDING, ErrorKind.OVERLOADED),
        # In-stream errors: no HTTP status, the body decides.
        (None, {"error": {"type": "overloaded_error"}}, NO_WORDING, ErrorKind.OVERLOADED),
        (None, {"error": {"type": "rate_limit_error"}}, NO_WORDING, ErrorKind.RATE_LIMITED),
        (None, {"error": {"type": "exceed_context_size_error"}}, NO_WORDING, ErrorKind.CONTEXT_TOO_LONG),
        (
            None,
            {"message": "m", "type": "BadRequestError", "code": 400},
            NO_WORDING,
            ErrorKind.INVALID_REQUEST,
        ),
        (None, {"error": {"code": 503, "message": "Loading model"}}, NO_WORDING, ErrorKind.OVERLOADED),
        (None, {"error": {"type": "something new"}}, NO_WORDING, ErrorKind.OVERLOADED),
        (200, {"error": {"type": "authentication_error"}}, NO_WORDING, ErrorKind.AUTHENTICATION),
    ],
)
def test_classification_table(
    status: int | None, body: object, wording: ErrorWording, kind: ErrorKind
) -> None:
    error = classify_failure(provider="p", status=status, detail=ErrorDetail.from_body(body), wording=wording)

    assert error.kind is kind
    assert error.provider == "p"


@pytest.mark.parametrize(
    ("body", "message", "error_type", "code"),
    [
        ({"error": {"message": "m", "type": "t", "code": "c"}}, "m", "t", "c"),
        (
            {"object": "error", "message": "m", "type": "BadRequestError", "code": 400},
            "m",
            "BadRequestError",
            "400",
        ),
        ({"error": "plain words"}, "plain words", "", ""),
        ("<html>Bad Gateway</html>", "<html>Bad Gateway</html>", "", ""),
        (None, "fallback", "", ""),
    ],
)
def test_error_detail_reads_every_body_shape(body: object, message: str, error_type: str, code: str) -> None:
    detail = ErrorDetail.from_body(body, "fallback")

    assert (detail.message, detail.type, detail.code) == (message, error_type, code)


def test_retry_after_in_seconds_milliseconds_and_dates() -> None:
    now = 1_700_000_000.0
    in_thirty_seconds = email.utils.formatdate(now + 30, usegmt=True)

    assert parse_retry_after({"Retry-After": "2"}) == 2
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": in_thirty_seconds}, now=now) == 30
    assert parse_retry_after({"retry-after": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", ""])
def test_unreadable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after({"retry-after": value}) is None


@given(st.floats(min_value=0, max_value=86_400, allow_nan=False))
def test_retry_after_seconds_round_trip(seconds: float) -> None:
    assert parse_retry_after({"retry-after": repr(seconds)}) == seconds


def test_the_retry_after_header_reaches_the_error() -> None:
    error = classify_failure(
        provider="p", status=429, detail=ErrorDetail(), wording=NO_WORDING, headers={"retry-after": "4"}
    )

    assert error.retry_after_seconds == 4
    assert error.retryable


@given(st.text(max_size=500))
def test_token_estimate_rounds_up_and_is_zero_only_for_empty_text(text: str) -> None:
    tokens = estimate_tokens(text)

    assert tokens * CHARS_PER_TOKEN >= len(text)
    assert (tokens - 1) * CHARS_PER_TOKEN < len(text) or tokens == 0
    assert (tokens == 0) == (text == "")


@given(st.text(max_size=200), st.text(max_size=200))
def test_longer_answers_never_estimate_cheaper(answer: str, more: str) -> None:
    request = chat_request()

    assert (
        estimate_usage(request, answer + more, ()).output_tokens
        >= estimate_usage(request, answer, ()).output_tokens
    )


def test_tools_count_towards_the_prompt() -> None:
    assert estimate_input_tokens(chat_request(tools=(LOOKUP_TOOL,))) > estimate_input_tokens(chat_request())
