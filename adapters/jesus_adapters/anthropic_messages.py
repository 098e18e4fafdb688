"""The Anthropic Messages wire protocol, over the official `anthropic` SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
from anthropic import types as wire

from jesus_adapters.errors import AdapterError, ErrorKind
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

ANTHROPIC_EXCEPTIONS = SdkExceptions(
    timeout=anthropic.APITimeoutError,
    status=anthropic.APIStatusError,
    response_validation=anthropic.APIResponseValidationError,
    connection=anthropic.APIConnectionError,
    api=anthropic.APIError,
    base=anthropic.AnthropicError,
)

# Anthropic stop reasons -> ours. "refusal" is not here: it becomes a ContentFiltered error.
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}
REFUSAL_STOP_REASONS = frozenset({"refusal"})
TRUNCATING_STOP_REASONS = frozenset({"max_tokens", "model_context_window_exceeded"})


def to_anthropic_messages(messages: tuple[Message, ...]) -> tuple[str, list[dict[str, Any]]]:
    """The `system` text and the Messages API `messages` for `messages`.

    System messages join into `system`. Tool results become `tool_result` blocks in a user turn,
    and consecutive turns of the same role merge into one, as the API expects all results of one
    assistant turn together in the next user turn.
    """
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system_parts.append(message.content)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _content_blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(system_parts), turns


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.content}
        ]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in message.tool_calls
    )
    return blocks


def to_anthropic_tools(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    """Messages API tool definitions for `tools`."""
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}
        for tool in tools
    ]


def _input_tokens(usage: Any) -> int:
    # Cache reads and writes are input too; counting them at the input price keeps metering whole.
    return sum(
        int(getattr(usage, name, None) or 0)
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )


@dataclass
class _Block:
    kind: str
    text: list[str] = field(default_factory=list)
    tool_id: str = ""
    tool_name: str = ""
    tool_input: dict[str, Any] = field(default_factory=dict)
    tool_json: list[str] = field(default_factory=list)


@dataclass
class _StreamAssembly:
    """What a Messages stream has said so far."""

    started: bool = False
    stopped: bool = False
    model: str = ""
    blocks: dict[int, _Block] = field(default_factory=dict)
    stop_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, event: object) -> str:
        """Take in one raw stream event; return the text it adds."""
        if isinstance(event, wire.RawMessageStartEvent):
            self.started = True
            self.model = event.message.model
            self.input_tokens = _input_tokens(event.message.usage)
            self.output_tokens = int(event.message.usage.output_tokens or 0)
        elif isinstance(event, wire.RawContentBlockStartEvent):
            block = event.content_block
            if isinstance(block, wire.ToolUseBlock):
                self.blocks[event.index] = _Block("tool_use", tool_id=block.id, tool_name=block.name)
            elif isinstance(block, wire.TextBlock):
                self.blocks[event.index] = _Block("text", text=[block.text] if block.text else [])
            else:
                self.blocks[event.index] = _Block(block.type)
        elif isinstance(event, wire.RawContentBlockDeltaEvent):
            return self._add_delta(event)
        elif isinstance(event, wire.RawMessageDeltaEvent):
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            # message_delta usage is cumulative for the whole message.
            self.output_tokens = int(event.usage.output_tokens or 0)
            if event.usage.input_tokens is not None:
                self.input_tokens = _input_tokens(event.usage)
        elif isinstance(event, wire.RawMessageStopEvent):
            self.stopped = True
        return ""

    def _add_delta(self, event: wire.RawContentBlockDeltaEvent) -> str:
        block = self.blocks.setdefault(event.index, _Block(event.delta.type))
        delta = event.delta
        if isinstance(delta, wire.TextDelta):
            block.text.append(delta.text)
            return delta.text
        if isinstance(delta, wire.InputJSONDelta):
            block.tool_json.append(delta.partial_json)
        return ""


class AnthropicAdapter:
    """A Claude model behind the Messages API, called through `anthropic.AsyncAnthropic`."""

    def __init__(self, config: AdapterConfig, profile: ProviderProfile) -> None:
        self._config = config
        self._profile = profile
        self._client = anthropic.AsyncAnthropic(
            api_key=config.api_key,
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
                message = await self._client.messages.create(**params, timeout=timeout_seconds)
        except Exception as exc:
            raise self._error(exc) from exc
        return self._response_of(message)

    async def stream(self, request: ChatRequest, *, timeout_seconds: float) -> AsyncIterator[StreamEvent]:
        """Stream `request`: text deltas, then one `StreamDone`.

        `timeout_seconds` bounds the wait for the answer to start and every gap between events.
        """
        params = self._params(request)
        try:
            async with asyncio.timeout(timeout_seconds):
                events = await self._client.messages.create(**params, stream=True, timeout=timeout_seconds)
        except Exception as exc:
            raise self._error(exc) from exc
        assembly = _StreamAssembly()
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout_seconds):
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise self._error(exc) from exc
                try:
                    text = assembly.add(event)
                except SHAPE_ERRORS as exc:
                    raise self._malformed(f"stream event lacks a field or has a bad value: {exc}") from exc
                if text:
                    yield TextDelta(text)
        finally:
            # Closing a broken stream can fail too; the error that ended it is the one to report.
            with contextlib.suppress(Exception):
                await events.close()
        yield StreamDone(self._response_of_stream(assembly))

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
        system, messages = to_anthropic_messages(request.messages)
        params: dict[str, Any] = {
            "model": self._config.model,
            "messages": messages,
            self._profile.max_tokens_field: request.max_tokens,
        }
        if system:
            params["system"] = system
        if request.tools:
            params["tools"] = to_anthropic_tools(request.tools)
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        return params

    def _error(self, exc: BaseException) -> AdapterError:
        return map_sdk_error(
            exc, provider=self.provider, sdk=ANTHROPIC_EXCEPTIONS, wording=self._profile.error_wording
        )

    def _malformed(self, what: str) -> AdapterError:
        return AdapterError(ErrorKind.MALFORMED_RESPONSE, what, provider=self.provider)

    def _response_of(self, message: object) -> ChatResponse:
        if not isinstance(message, wire.Message):
            raise self._malformed(f"answer is not a message but {type(message).__name__}")
        try:
            blocks = message.content
            if blocks is None:
                raise self._malformed("answer has no content")
            text = "".join(block.text for block in blocks if isinstance(block, wire.TextBlock))
            tool_calls = tuple(
                ToolCall(id=block.id, name=block.name, arguments=self._arguments(block.input, block.name))
                for block in blocks
                if isinstance(block, wire.ToolUseBlock)
            )
            usage = Usage(
                input_tokens=_input_tokens(message.usage), output_tokens=int(message.usage.output_tokens)
            )
            return self._finish(text, tool_calls, message.stop_reason, usage, message.model)
        except SHAPE_ERRORS as exc:
            # The SDK builds models without validation; a missing field surfaces here.
            raise self._malformed(f"answer lacks a field: {exc}") from exc

    def _response_of_stream(self, assembly: _StreamAssembly) -> ChatResponse:
        if not assembly.started:
            raise self._malformed("stream did not start with message_start")
        if not assembly.stopped:
            raise self._malformed("stream ended before message_stop")
        text = "".join("".join(block.text) for _, block in sorted(assembly.blocks.items()))
        # An answer cut by max_tokens may end inside a tool call's input; that call is incomplete.
        truncated = assembly.stop_reason in TRUNCATING_STOP_REASONS
        tool_calls: list[ToolCall] = []
        for _, block in sorted(assembly.blocks.items()):
            if block.kind != "tool_use":
                continue
            try:
                arguments = self._json_arguments("".join(block.tool_json), block.tool_name)
            except AdapterError:
                if truncated:
                    continue
                raise
            tool_calls.append(ToolCall(id=block.tool_id, name=block.tool_name, arguments=arguments))
        usage = Usage(input_tokens=assembly.input_tokens, output_tokens=assembly.output_tokens)
        return self._finish(text, tuple(tool_calls), assembly.stop_reason, usage, assembly.model)

    def _arguments(self, value: object, tool: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self._malformed(f"tool call {tool!r} has input that is not a JSON object")
        return value

    def _json_arguments(self, raw: str, tool: str) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            return self._arguments(json.loads(raw), tool)
        except json.JSONDecodeError as exc:
            raise self._malformed(f"tool call {tool!r} has input that is not JSON: {exc}") from exc

    def _finish(
        self,
        text: str,
        tool_calls: tuple[ToolCall, ...],
        stop_reason: str | None,
        usage: Usage,
        model: str,
    ) -> ChatResponse:
        if stop_reason in REFUSAL_STOP_REASONS:
            raise AdapterError(
                ErrorKind.CONTENT_FILTERED,
                "the model declined to answer (stop reason refusal)",
                provider=self.provider,
                usage=usage,
            )
        finish_reason = STOP_REASONS.get(stop_reason or "")
        if finish_reason is None:
            raise self._malformed(f"unknown stop reason {stop_reason!r}")
        return ChatResponse(
            content=text,
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            usage=usage,
            model=model or self.model,
            provider=self.provider,
        )
