"""The Anthropic Messages wire protocol, over the official `anthropic` SDK.

`AnthropicMessagesWire` builds Messages requests, reads messages and assembles streams;
`jesus_adapters.driver.SdkDriver` makes the calls. `AnthropicAdapter` is the two together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import anthropic
from anthropic import types as wire

from jesus_adapters.driver import SdkDriver
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.sdk_errors import SdkExceptions
from jesus_adapters.types import ChatRequest, ChatResponse, FinishReason, Message, ToolCall, ToolSpec, Usage
from jesus_adapters.wire import (
    SdkCall,
    SdkParams,
    SdkWire,
    decode_arguments,
    malformed,
    tool_arguments,
)

ANTHROPIC_EXCEPTIONS = SdkExceptions.of(anthropic, base=anthropic.AnthropicError)

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
    tool_json: list[str] = field(default_factory=list)


@dataclass
class _StreamAssembly:
    """What a Messages stream has said so far."""

    reader: AnthropicMessagesWire  # the wire that reads the finished stream
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

    def response(self) -> ChatResponse:
        """The whole streamed message; `MalformedResponse` when the stream did not run its course."""
        return self.reader.response_of_stream(self)


class AnthropicMessagesWire(SdkWire[anthropic.AsyncAnthropic]):
    """The Messages API through `anthropic.AsyncAnthropic`: requests, messages and their streams."""

    exceptions = ANTHROPIC_EXCEPTIONS

    def open_client(self, api_key: str | None, **options: Any) -> anthropic.AsyncAnthropic:
        """`anthropic.AsyncAnthropic` with the shared options, over the SDK's aiohttp transport (ADR 18)."""
        return anthropic.AsyncAnthropic(
            api_key=api_key, http_client=anthropic.DefaultAioHttpClient(), **options
        )

    def params(self, request: ChatRequest, *, stream: bool) -> SdkParams:
        """`messages.create` arguments for `request` (a stream asks for the same)."""
        system, messages = to_anthropic_messages(request.messages)
        params = self.base_params(request, messages)
        if system:
            params["system"] = system
        if request.tools:
            params["tools"] = to_anthropic_tools(request.tools)
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        return params

    @property
    def create(self) -> SdkCall:
        """`messages.create`."""
        return self._client.messages.create

    def parse(self, answer: object, request: ChatRequest) -> ChatResponse:
        """Read a whole `Message`."""
        if not isinstance(answer, wire.Message):
            raise malformed(self.provider, f"answer is not a message but {type(answer).__name__}")
        blocks = answer.content
        if blocks is None:
            raise malformed(self.provider, "answer has no content")
        text = "".join(block.text for block in blocks if isinstance(block, wire.TextBlock))
        tool_calls = tuple(
            ToolCall(
                id=block.id,
                name=block.name,
                arguments=tool_arguments(block.input, provider=self.provider, tool=block.name),
            )
            for block in blocks
            if isinstance(block, wire.ToolUseBlock)
        )
        usage = Usage(input_tokens=_input_tokens(answer.usage), output_tokens=int(answer.usage.output_tokens))
        return self._finish(text, tool_calls, answer.stop_reason, usage, answer.model)

    def assembly(self, request: ChatRequest) -> _StreamAssembly:
        """A fresh assembly for one streamed message."""
        return _StreamAssembly(self)

    def response_of_stream(self, assembly: _StreamAssembly) -> ChatResponse:
        """The message a finished stream assembled."""
        if not assembly.started:
            raise malformed(self.provider, "stream did not start with message_start")
        if not assembly.stopped:
            raise malformed(self.provider, "stream ended before message_stop")
        blocks = [block for _, block in sorted(assembly.blocks.items())]
        text = "".join("".join(block.text) for block in blocks)
        # An answer cut by max_tokens may end inside a tool call's input; that call is incomplete.
        truncated = assembly.stop_reason in TRUNCATING_STOP_REASONS
        tool_calls = tuple(self._streamed_tool_calls(blocks, truncated=truncated))
        usage = Usage(input_tokens=assembly.input_tokens, output_tokens=assembly.output_tokens)
        return self._finish(text, tool_calls, assembly.stop_reason, usage, assembly.model)

    def _streamed_tool_calls(self, blocks: Iterable[_Block], *, truncated: bool) -> Iterable[ToolCall]:
        for block in blocks:
            if block.kind != "tool_use":
                continue
            try:
                raw = "".join(block.tool_json)
                arguments = decode_arguments(raw, provider=self.provider, tool=block.tool_name)
            except AdapterError:
                if truncated:
                    continue
                raise
            yield ToolCall(id=block.tool_id, name=block.tool_name, arguments=arguments)

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
            raise malformed(self.provider, f"unknown stop reason {stop_reason!r}")
        return ChatResponse(
            content=text,
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            usage=usage,
            model=model or self._model,
            provider=self.provider,
        )


class AnthropicAdapter(SdkDriver):
    """A Claude model behind the Messages API: the SDK driver speaking `AnthropicMessagesWire`."""

    wire_class = AnthropicMessagesWire
