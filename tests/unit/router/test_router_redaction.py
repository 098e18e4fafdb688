"""The router's exits are redacted: a provider error that echoes the key reaches no record, response
or log line; prompts to an adapter that may not receive personal data are redacted before the call."""

from __future__ import annotations

import logging

import pytest
from tests.builders.adapters import openai_adapter, scripted_adapter
from tests.builders.chat import reply, request
from tests.builders.doubles import BREAK_MID_STREAM, FakeAdapter, Step

from jesus.api import ModelAdapter
from jesus.logic.routing import RetryPolicy, RoutePlan
from jesus.redaction import RedactionConfig
from jesus.router import RoutedAdapter, RoutedStreamEnd, RouteError, Router, RunLedger
from jesus.router.config import EnvironmentCredentials, build_routed_adapters
from jesus.router.redacting import CREDENTIAL_MARKER, RedactingAdapter, scrub_credentials
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.types import ChatRequest, Message, ToolCall

KEY = "sk-proj-" + "K" * 40
ODD_KEY = "local-credential-0123"  # no known format: only the literal scrub finds it
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLXZhbHVl"
PATTERNS = RedactionConfig().patterns_only().redactor()


def echoing(kind: ErrorKind = ErrorKind.AUTHENTICATION) -> AdapterError:
    """A provider error that echoes the request's credentials and a caller's e-mail."""
    return AdapterError(
        kind,
        f"Incorrect API key provided: {KEY} (also tried {ODD_KEY}); contact ada@example.com",
        provider="fake",
        status_code=401,
    )


def guarded(steps: list[Step], *, redact_prompts: bool = False) -> tuple[RedactingAdapter, FakeAdapter]:
    inner = FakeAdapter(steps)
    return RedactingAdapter(
        inner, PATTERNS, credentials=(ODD_KEY, "short"), redact_prompts=redact_prompts
    ), inner


def two_step_router(primary: list[Step]) -> Router:
    first, _ = guarded(primary)
    second, _ = guarded([reply("from fallback")])
    return Router(
        {"primary": RoutedAdapter("primary", first), "fallback": RoutedAdapter("fallback", second)},
        sleep=_no_sleep,
    )


async def _no_sleep(_: float) -> None:
    return None


PLAN = RoutePlan(chain=("primary", "fallback"), retry=RetryPolicy(max_retries=0))


def assert_clean(text: str) -> None:
    for secret in (KEY, ODD_KEY, "ada@example.com"):
        assert secret not in text


def test_credentials_are_scrubbed_literally_and_short_ones_left_alone() -> None:
    assert scrub_credentials(f"key={ODD_KEY}!", (ODD_KEY,)) == f"key={CREDENTIAL_MARKER}!"
    assert scrub_credentials("a short word", ("short",)) == "a short word"


async def test_a_fallback_after_an_echoed_key_leaves_it_in_no_record_and_no_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = two_step_router([echoing(ErrorKind.OVERLOADED)])
    with caplog.at_level(logging.INFO):
        routed = await router.complete(PLAN, request(), RunLedger("run-a"))
    record = routed.record.to_dict()
    assert routed.response.content == "from fallback"
    assert_clean(str(record))
    assert_clean(caplog.text)
    attempt_error = record["attempts"][0]["error"]
    assert "[REDACTED:openai-key]" in attempt_error and CREDENTIAL_MARKER in attempt_error
    assert "[REDACTED:email]" in attempt_error
    assert "[REDACTED:openai-key]" in record["fallbacks"][0]["reason"]
    assert record["attempts"][0]["errorKind"] == "Overloaded", "the error keeps its kind"


async def test_a_call_that_fails_for_good_raises_and_records_clean_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = two_step_router([echoing()])
    with caplog.at_level(logging.INFO), pytest.raises(RouteError) as caught:
        await router.complete(PLAN, request(), RunLedger("run-b"))
    assert caught.value.kind == "Authentication"
    assert_clean(caught.value.reason)
    assert_clean(str(caught.value.record.to_dict()))
    assert_clean(caplog.text)


async def test_stream_failures_are_clean_before_and_after_the_first_event() -> None:
    before, _ = guarded([echoing()])
    with pytest.raises(AdapterError) as caught:
        async for _ in before.stream(request(), timeout_seconds=1):
            pass
    assert_clean(caught.value.message)
    assert caught.value.status_code == 401

    router = Router({"primary": RoutedAdapter("primary", guarded([BREAK_MID_STREAM])[0])})
    ledger = RunLedger("run-c")
    with pytest.raises(RouteError) as broke:
        async for _ in router.stream(RoutePlan(chain=("primary",)), request(), ledger):
            pass
    assert "stream broke" in broke.value.reason


async def test_a_stream_that_works_is_passed_through() -> None:
    router = Router({"primary": RoutedAdapter("primary", guarded([reply("all good here")])[0])})
    events = [e async for e in router.stream(RoutePlan(chain=("primary",)), request(), RunLedger("r"))]
    assert isinstance(events[-1], RoutedStreamEnd)
    assert events[-1].response.content == "all good here"


async def test_unexpected_exceptions_become_clean_malformed_responses_and_timeouts_pass() -> None:
    broken, _ = guarded([RuntimeError(f"boom {KEY}")])
    with pytest.raises(AdapterError) as caught:
        await broken.complete(request(), timeout_seconds=1)
    assert caught.value.kind is ErrorKind.MALFORMED_RESPONSE
    assert caught.value.message == "adapter failed: RuntimeError: boom [REDACTED:openai-key]"
    slow, _ = guarded([TimeoutError()])
    with pytest.raises(TimeoutError):
        await slow.complete(request(), timeout_seconds=1)
    fine, _ = guarded([AdapterError(ErrorKind.RATE_LIMITED, "slow down", provider="fake")])
    with pytest.raises(AdapterError) as unchanged:
        await fine.complete(request(), timeout_seconds=1)
    assert unchanged.value.message == "slow down"


def personal_request() -> ChatRequest:
    return ChatRequest(
        messages=(
            Message("user", f"Mail ada@example.com, call +44 20 7946 0958, token {JWT}"),
            Message("assistant", "", (ToolCall("c1", "send", {"to": "ada@example.com", "n": 3}),)),
            Message("tool", "card 4111 1111 1111 1111 charged", tool_call_id="c1"),
        ),
        max_tokens=50,
    )


async def test_prompts_are_redacted_only_where_personal_data_may_not_go() -> None:
    strict, inner = guarded([reply()], redact_prompts=True)
    await strict.complete(personal_request(), timeout_seconds=1)
    sent = inner.received[0]
    text = str(sent)
    for secret in ("ada@example.com", "7946 0958", JWT, "4111 1111 1111 1111"):
        assert secret not in text
    assert sent.messages[1].tool_calls[0].arguments == {"to": "[REDACTED:email]", "n": 3}
    assert sent.messages[2].tool_call_id == "c1" and sent.max_tokens == 50

    open_, inner_open = guarded([reply()])
    await open_.complete(personal_request(), timeout_seconds=1)
    assert inner_open.received[0] == personal_request()


async def test_streamed_prompts_are_redacted_too() -> None:
    strict, inner = guarded([reply("ok then")], redact_prompts=True)
    events = [e async for e in strict.stream(personal_request(), timeout_seconds=1)]
    assert events and "ada@example.com" not in str(inner.received[0])


def test_a_transcript_sent_again_is_redacted_from_the_cache() -> None:
    texts: list[str] = []

    def counting(text: str) -> str:
        texts.append(text)
        return text

    strict = RedactingAdapter(FakeAdapter([reply()]), counting, redact_prompts=True)
    strict.redact_request(personal_request())
    strict.redact_request(personal_request())
    assert len(texts) == len(set(texts)), "each text is redacted once"


def test_the_router_wraps_every_adapter_with_its_credential_and_prompt_rule() -> None:
    confidential = openai_adapter("inside")
    confidential["spec"]["dataClassifications"] = ["internal", "confidential"]
    specs = {
        "hosted": ModelAdapter.model_validate(openai_adapter()),
        "inside": ModelAdapter.model_validate(confidential),
        "script": ModelAdapter.model_validate(scripted_adapter()),
    }
    environ = {"OPENAI_KEY_APIKEY": ODD_KEY, "OPENAI_API_KEY": ODD_KEY}
    live = build_routed_adapters(
        specs, live=True, credentials=EnvironmentCredentials(environ), redact=PATTERNS
    )
    hosted, inside, script = (live.adapters[name].adapter for name in ("hosted", "inside", "script"))
    assert isinstance(hosted, RedactingAdapter) and hosted.redact_prompts and hosted.credentials == (ODD_KEY,)
    assert isinstance(inside, RedactingAdapter) and not inside.redact_prompts, "accepts confidential"
    assert isinstance(script, RedactingAdapter) and not script.redact_prompts, "nothing leaves the process"
    dry = build_routed_adapters(specs, live=False, credentials=EnvironmentCredentials({}))
    assert isinstance(dry.adapters["hosted"].adapter, RedactingAdapter)
    assert not dry.adapters["hosted"].adapter.redact_prompts, "a dry run sends nothing"
