"""The router's exits to and from a provider, redacted (ADR 0015).

`RedactingAdapter` wraps every adapter the router builds. Going out, when the adapter may not receive
personal data (`ModelAdapterSpec.receives_personal_data`), the prompt's message texts, tool results and
tool-call arguments are redacted before the call. Coming back, a failure's text is redacted before it
reaches the call's record, the caller's response, a span or a log line: a provider that echoes the
request's API key in its error puts it nowhere. The adapter's own credential values are removed
literally first, whatever their format, since the router knows them; then the redactor runs.
"""

from __future__ import annotations

import asyncio
import functools
import re
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from jesus.redaction import Redactor, redact_structure
from jesus.router.logsafe import escape_controls
from jesus.router.routed import unexpected_error
from jesus.router.streams import StreamEvent, close_stream
from jesus_adapters.base import ModelAdapter as Adapter
from jesus_adapters.errors import AdapterError
from jesus_adapters.types import ChatRequest, ChatResponse, Message

CREDENTIAL_MARKER = "[REDACTED:credential]"
# Credentials shorter than this are not scrubbed literally: "abc" would shred ordinary words.
MIN_CREDENTIAL_LENGTH = 8
_HEX_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# A transcript is sent again every turn; its messages are redacted once and then found here.
PROMPT_CACHE_SIZE = 2048
# Prompt redaction reads whole transcripts (spaCy among it): off the event loop, one text at a time,
# so other calls keep flowing and the engines are never used by two threads at once.
_REDACTION_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jesus-redact")


def _written_forms(value: str) -> set[str]:
    """The ways an echo may write a credential: as it is, percent-encoded (upper- or lower-case hex
    digits), form-encoded, with a `+` read back as a space, and with JSON's escaped slashes. Not base64:
    an Authorization header's value is found by the redactor's `authorization` pattern instead."""
    encoded = {urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value, safe="")}
    # Upper-case hex digits, and lower-case ones; the credential's own letters keep their case.
    encoded |= {_HEX_ESCAPE.sub(lambda m: m.group().lower(), form) for form in encoded}
    return {value, value.replace("/", "\\/"), value.replace("+", " "), *encoded}


def scrub_credentials(text: str, credentials: Iterable[str]) -> str:
    """`text` without any of `credentials` (the literal values, and their encoded forms), each replaced
    by a marker."""
    for value in credentials:
        if len(value) < MIN_CREDENTIAL_LENGTH:
            continue
        # Longest first: an encoded form may contain a shorter one.
        for form in sorted(_written_forms(value), key=len, reverse=True):
            if form in text:
                text = text.replace(form, CREDENTIAL_MARKER)
    return text


class RedactingAdapter:
    """An adapter whose failures carry redacted text and, with `redact_prompts`, whose prompts do too."""

    def __init__(
        self,
        inner: Adapter,
        redact: Redactor,
        *,
        credentials: tuple[str, ...] = (),
        redact_prompts: bool = False,
    ) -> None:
        self.inner = inner
        self.credentials = tuple(value for value in credentials if len(value) >= MIN_CREDENTIAL_LENGTH)
        self.redact_prompts = redact_prompts
        self._redact = redact
        self._redact_prompt_text = functools.lru_cache(maxsize=PROMPT_CACHE_SIZE)(self._clean)

    @property
    def provider(self) -> str:
        """The wrapped adapter's provider."""
        return self.inner.provider

    @property
    def model(self) -> str:
        """The wrapped adapter's model."""
        return self.inner.model

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        """The wrapped adapter's answer to the (redacted) request; its failure, redacted."""
        sent = await self._outgoing(request)
        try:
            return await self.inner.complete(sent, timeout_seconds=timeout_seconds)
        except Exception as exc:
            raise self._failure(exc) from None

    async def stream(self, request: ChatRequest, *, timeout_seconds: float) -> AsyncIterator[StreamEvent]:
        """The wrapped adapter's stream for the (redacted) request; a failure at any point, redacted."""
        sent = await self._outgoing(request)
        events = aiter(self.inner.stream(sent, timeout_seconds=timeout_seconds))
        try:
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    raise self._failure(exc) from None
                yield event
        finally:
            await close_stream(events)

    async def aclose(self) -> None:
        """Close the wrapped adapter."""
        await self.inner.aclose()

    def redact_request(self, request: ChatRequest) -> ChatRequest:
        """`request` with every message text, tool result and tool-call argument redacted."""
        return replace(request, messages=tuple(self._message(m) for m in request.messages))

    def clean_error(self, error: AdapterError) -> AdapterError:
        """`error` with its text redacted and its control characters escaped (a new error; the
        provider's original text is dropped): an ANSI escape or a newline in it reaches no terminal
        and forges no log line, wherever the record is read."""
        message = escape_controls(self._clean(error.message))
        if message == error.message:
            return error
        return AdapterError(
            error.kind,
            message,
            provider=error.provider,
            status_code=error.status_code,
            retry_after_seconds=error.retry_after_seconds,
            usage=error.usage,
        )

    def _clean(self, text: str) -> str:
        return self._redact(scrub_credentials(text, self.credentials))

    def _failure(self, exc: Exception) -> Exception:
        if isinstance(exc, TimeoutError):  # the router words a timeout itself, from the plan
            return exc
        if not isinstance(exc, AdapterError):
            exc = unexpected_error(exc, self.provider)
        return self.clean_error(exc)

    async def _outgoing(self, request: ChatRequest) -> ChatRequest:
        if not self.redact_prompts:
            return request
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_REDACTION_THREAD, self.redact_request, request)

    def _message(self, message: Message) -> Message:
        calls = tuple(
            replace(call, arguments=redact_structure(call.arguments, self._redact_prompt_text))
            for call in message.tool_calls
        )
        return replace(message, content=self._redact_prompt_text(message.content), tool_calls=calls)
