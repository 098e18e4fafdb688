"""The OpenAI Chat Completions wire protocol, over the official `openai` SDK.

One adapter serves every provider that speaks it (OpenAI, any OpenAI-compatible server, vLLM,
llama.cpp); the provider's `ProviderProfile` carries what differs between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from jesus_adapters.classify import ErrorDetail, classify_failure
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.estimate import estimate_usage
from jesus_adapters.profiles import ProviderProfile
from jesus_adapters.sdk_errors import SHAPE_ERRORS, SdkExceptions, map_sdk_error
from jesus_adapters.types import (
    AdapterConfig,
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)

log = logging.getLogger(__name__)

OPENAI_EXCEPTIONS = SdkExceptions(
    timeout=openai.APITimeoutError,
    status=openai.APIStatusError,
    response_validation=openai.APIResponseValidationError,
    connection=openai.APIConnectionError,
    api=openai.APIError,
    base=openai.OpenAIError,
)

# Sent as the bearer token to servers that need none (vLLM, llama.cpp without --api-key): the SDK
# insists on a key, and without an explicit one it would read OPENAI_API_KEY from the environment.
NO_API_KEY = "no-key"

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def to_openai_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Chat Completions messages for `messages`; tool results become `role: tool` messages."""
    return [_to_openai_message(message) for message in messages]


def _to_openai_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def to_openai_tools(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    """Chat Completions `tools` (function tools) for `tools`."""
    return [
        {
            "type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema},
        }
        for tool in tools
    ]


def decode_arguments(raw: str | None, *, provider: str, tool: str) -> dict[str, Any]:
    """A tool call's arguments: a JSON object in a string ("" means no arguments)."""
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise AdapterError(
            ErrorKind.MALFORMED_RESPONSE,
            f"tool call {tool!r} has arguments that are not JSON: {exc}",
            provider=provider,
        ) from exc
    if not isinstance(decoded, dict):
        raise AdapterError(
            ErrorKind.MALFORMED_RESPONSE,
            f"tool call {tool!r} has arguments that are not a JSON object",
            provider=provider,
        )
    return decoded


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class _StreamAssembly:
    """What a stream has said so far: text, tool-call fragments by index, finish reason, usage."""

    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Take in one chunk; return the text it adds."""
        self.model = self.model or chunk.model
        if chunk.usage is not None:
            # llama.cpp sends usage on the chunk that finishes; OpenAI and vLLM on a final one.
            self.usage = _usage_of(chunk.usage)
        added = ""
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta is not None:
                added += delta.content or ""
                if delta.refusal:
                    self.refusal.append(delta.refusal)
                for part in delta.tool_calls or ():
                    parts = self.tool_calls.setdefault(part.index, _ToolCallParts())
                    parts.id = parts.id or (part.id or "")
                    if part.function is not None:
                        parts.name = parts.name or (part.function.name or "")
                        parts.arguments += part.function.arguments or ""
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        self.text.append(added)
        return added


def _usage_of(usage: Any) -> Usage:
    return Usage(input_tokens=int(usage.prompt_tokens or 0), output_tokens=int(usage.completion_tokens or 0))


class OpenAIChatAdapter:
    """A model behind a Chat Completions endpoint, called through `openai.AsyncOpenAI`."""

    def __init__(self, config: AdapterConfig, profile: ProviderProfile) -> None:
        self._config = config
        self._profile = profile
        self._client = openai.AsyncOpenAI(
            api_key=config.api_key or NO_API_KEY,
            base_url=config.base_url or profile.default_base_url,
            max_retries=0,  # the router owns retries and failover
            default_headers=dict(config.extra_headers),
        )

    @property
    def provider(self) -> str:
        return self._profile.name

    @property
    def model(self) -> str:
        return self._config.model

    @property
    def profile(self) -> ProviderProfile:
        """The provider profile this adapter was built with."""
        return self._profile

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        """Send `request` and return the whole answer; `timeout_seconds` bounds the whole call."""
        params = self._params(request)
        try:
            async with asyncio.timeout(timeout_seconds):
                completion = await self._client.chat.completions.create(
                    **params, stream=False, timeout=timeout_seconds
                )
        except Exception as exc:
            raise self._error(exc) from exc
        return self._response_of(completion, request)

    async def stream(self, request: ChatRequest, *, timeout_seconds: float) -> AsyncIterator[StreamEvent]:
        """Stream `request`: text deltas, then one `StreamDone`.

        `timeout_seconds` bounds the wait for the answer to start and every gap between chunks, so a
        hung server fails fast while a long, live answer is not cut off. Where the profile says the
        endpoint cannot stream, the whole answer comes as one delta.
        """
        if not self._profile.capabilities.streaming:
            response = await self.complete(request, timeout_seconds=timeout_seconds)
            if response.content:
                yield TextDelta(response.content)
            yield StreamDone(response)
            return
        params = self._params(request)
        if self._profile.capabilities.streaming_usage:
            params["stream_options"] = {"include_usage": True}
        try:
            async with asyncio.timeout(timeout_seconds):
                chunks = await self._client.chat.completions.create(
                    **params, stream=True, timeout=timeout_seconds
                )
        except Exception as exc:
            raise self._error(exc) from exc
        assembly = _StreamAssembly()
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout_seconds):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise self._error(exc) from exc
                try:
                    text = assembly.add(chunk)
                except SHAPE_ERRORS as exc:
                    raise self._malformed(f"stream event lacks a field or has a bad value: {exc}") from exc
                if text:
                    yield TextDelta(text)
        finally:
            # Closing a broken stream can fail too; the error that ended it is the one to report.
            with contextlib.suppress(Exception):
                await chunks.close()
        yield StreamDone(self._response_of_stream(assembly, request))

    async def aclose(self) -> None:
        """Close the SDK client and its connection pool."""
        await self._client.close()

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        if request.tools and not self._profile.capabilities.tool_calling:
            raise AdapterError(
                ErrorKind.INVALID_REQUEST,
                f"model {self.model!r} is configured without tool calling, but the request has tools",
                provider=self.provider,
            )
        params: dict[str, Any] = {
            "model": self._config.model,
            "messages": to_openai_messages(request.messages),
            self._profile.max_tokens_field: request.max_tokens,
        }
        if request.tools:
            params["tools"] = to_openai_tools(request.tools)
        if request.stop:
            params["stop"] = list(request.stop)
        return params

    def _error(self, exc: BaseException) -> AdapterError:
        return map_sdk_error(
            exc, provider=self.provider, sdk=OPENAI_EXCEPTIONS, wording=self._profile.error_wording
        )

    def _malformed(self, what: str) -> AdapterError:
        return AdapterError(ErrorKind.MALFORMED_RESPONSE, what, provider=self.provider)

    def _response_of(self, completion: object, request: ChatRequest) -> ChatResponse:
        if not isinstance(completion, ChatCompletion):
            raise self._malformed(f"answer is not a chat completion but {type(completion).__name__}")
        try:
            choices = completion.choices
            embedded_error = (completion.model_extra or {}).get("error")
            if not choices and embedded_error:
                # Some compatible servers answer 200 with an error object instead of a completion.
                raise classify_failure(
                    provider=self.provider,
                    status=None,
                    detail=ErrorDetail.from_body({"error": embedded_error}),
                    wording=self._profile.error_wording,
                )
            if not choices:
                raise self._malformed("answer has no choices")
            message = choices[0].message
            if message is None:
                raise self._malformed("answer's choice has no message")
            raw_calls = tuple(
                _ToolCallParts(call.id, call.function.name, call.function.arguments or "")
                for call in message.tool_calls or ()
                if call.type == "function"
            )
            usage = _usage_of(completion.usage) if completion.usage is not None else None
            return self._finish(
                content=message.content or "",
                raw_calls=raw_calls,
                raw_finish_reason=choices[0].finish_reason,
                refusal=message.refusal or "",
                usage=usage,
                model=completion.model,
                request=request,
            )
        except SHAPE_ERRORS as exc:
            # The SDK builds models without validation; a missing field surfaces here.
            raise self._malformed(f"answer lacks a field: {exc}") from exc

    def _response_of_stream(self, assembly: _StreamAssembly, request: ChatRequest) -> ChatResponse:
        if assembly.finish_reason is None:
            raise self._malformed("stream ended before a finish reason")
        return self._finish(
            content="".join(assembly.text),
            raw_calls=tuple(parts for _, parts in sorted(assembly.tool_calls.items())),
            raw_finish_reason=assembly.finish_reason,
            refusal="".join(assembly.refusal),
            usage=assembly.usage,
            model=assembly.model,
            request=request,
        )

    def _tool_calls(self, raw_calls: tuple[_ToolCallParts, ...], *, truncated: bool) -> tuple[ToolCall, ...]:
        calls: list[ToolCall] = []
        for parts in raw_calls:
            if not parts.id or not parts.name:
                raise self._malformed("tool call lacks an id or a name")
            try:
                arguments = decode_arguments(parts.arguments, provider=self.provider, tool=parts.name)
            except AdapterError:
                if truncated:
                    # The answer hit max_tokens inside this call; it is incomplete, not malformed.
                    continue
                raise
            calls.append(ToolCall(id=parts.id, name=parts.name, arguments=arguments))
        return tuple(calls)

    def _finish(
        self,
        *,
        content: str,
        raw_calls: tuple[_ToolCallParts, ...],
        raw_finish_reason: str | None,
        refusal: str,
        usage: Usage | None,
        model: str | None,
        request: ChatRequest,
    ) -> ChatResponse:
        finish_reason = FINISH_REASONS.get(raw_finish_reason or "")
        if finish_reason is None:
            raise self._malformed(f"unknown finish reason {raw_finish_reason!r}")
        tool_calls = self._tool_calls(raw_calls, truncated=finish_reason == "length")
        estimated = usage is None
        if usage is None:
            log.warning(
                "Estimated usage, the server reported none provider=%s model=%s", self.provider, self.model
            )
            usage = estimate_usage(request, content, tool_calls)
        if finish_reason == "content_filter" or refusal:
            raise AdapterError(
                ErrorKind.CONTENT_FILTERED,
                refusal or "the answer was withheld by the provider's content filter",
                provider=self.provider,
                usage=usage,
            )
        if tool_calls and finish_reason == "stop":
            # Some servers (vLLM with certain tool parsers) finish a tool call with "stop".
            finish_reason = "tool_calls"
        return ChatResponse(
            content=content,
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            usage=usage,
            model=model or self.model,
            provider=self.provider,
            usage_estimated=estimated,
        )
