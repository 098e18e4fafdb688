"""The OpenAI Chat Completions wire protocol, over the official `openai` SDK.

One wire serves every provider that speaks it (OpenAI, any OpenAI-compatible server, vLLM,
llama.cpp); the provider's `ProviderProfile` carries what differs between them. `OpenAIChatWire` builds
requests, reads completions and assembles streams; `jesus_adapters.driver.SdkDriver` makes the calls.
`OpenAIChatAdapter` is the two together.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import openai

from jesus_adapters.classify import ErrorDetail, classify_failure
from jesus_adapters.driver import SdkDriver
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.estimate import estimate_usage
from jesus_adapters.sdk_errors import SdkExceptions
from jesus_adapters.types import ChatRequest, ChatResponse, FinishReason, Message, ToolCall, ToolSpec, Usage
from jesus_adapters.wire import SdkCall, SdkParams, SdkWire, decode_arguments, malformed

log = logging.getLogger(__name__)

OPENAI_EXCEPTIONS = SdkExceptions.of(openai, base=openai.OpenAIError)

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


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class _Answer:
    """One completion's parts, whole or streamed, before they are checked and turned into a response."""

    content: str
    raw_calls: tuple[_ToolCallParts, ...]
    raw_finish_reason: str | None
    refusal: str
    usage: Usage | None
    model: str | None


@dataclass
class _StreamAssembly:
    """What a stream has said so far: text, tool-call fragments by index, finish reason, usage."""

    reader: OpenAIChatWire  # the wire that reads the finished stream
    request: ChatRequest
    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None

    def add(self, event: object) -> str:
        """Take in one chunk (its JSON, as the SDK decoded it); return the text it adds."""
        if not isinstance(event, dict):
            raise TypeError(f"stream event is not a chunk but {type(event).__name__}")
        self.model = self.model or _text_or_none(event.get("model"))
        usage = event.get("usage")
        if usage is not None:
            # llama.cpp sends usage on the chunk that finishes; OpenAI and vLLM on a final one.
            self.usage = _usage_of(usage)
        added = ""
        for choice in event.get("choices") or ():
            if _object(choice)["index"] != 0:
                continue
            delta = choice.get("delta")
            if delta is not None:
                added += _text(_object(delta).get("content"))
                refusal = delta.get("refusal")
                if refusal:
                    self.refusal.append(_text(refusal))
                for part in delta.get("tool_calls") or ():
                    parts = self.tool_calls.setdefault(_object(part)["index"], _ToolCallParts())
                    parts.id = parts.id or _text(part.get("id"))
                    function = part.get("function")
                    if function is not None:
                        parts.name = parts.name or _text(_object(function).get("name"))
                        parts.arguments += _text(function.get("arguments"))
            finish_reason = choice.get("finish_reason")
            if finish_reason is not None:
                self.finish_reason = _text(finish_reason)
        self.text.append(added)
        return added

    def response(self) -> ChatResponse:
        """The whole streamed completion; `MalformedResponse` when the stream never finished."""
        if self.finish_reason is None:
            raise malformed(self.reader.provider, "stream ended before a finish reason")
        answer = _Answer(
            content="".join(self.text),
            raw_calls=tuple(parts for _, parts in sorted(self.tool_calls.items())),
            raw_finish_reason=self.finish_reason,
            refusal="".join(self.refusal),
            usage=self.usage,
            model=self.model,
        )
        return self.reader.finish(answer, self.request)


def _usage_of(usage: Any) -> Usage:
    usage = _object(usage)
    return Usage(
        input_tokens=int(usage["prompt_tokens"] or 0), output_tokens=int(usage["completion_tokens"] or 0)
    )


# Answers are read as the JSON the SDK decoded (it builds its pydantic types without validation, at
# 0.1-0.2 ms a chunk: most of what a streamed chunk cost the router). A field of the wrong shape raises
# one of SHAPE_ERRORS, which the driver reports as a malformed answer, as it did for the SDK's types.


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"an object is required, not {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    """A text field; absent or null is empty."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"a string is required, not {type(value).__name__}")
    return value


def _text_or_none(value: Any) -> str | None:
    return _text(value) or None


class OpenAIChatWire(SdkWire[openai.AsyncOpenAI]):
    """Chat Completions through `openai.AsyncOpenAI`: requests, completions and their streams."""

    exceptions = OPENAI_EXCEPTIONS

    def open_client(self, api_key: str | None, **options: Any) -> openai.AsyncOpenAI:
        """`openai.AsyncOpenAI` with the shared options, over the SDK's aiohttp transport (ADR 18)."""
        return openai.AsyncOpenAI(
            api_key=api_key or NO_API_KEY, http_client=openai.DefaultAioHttpClient(), **options
        )

    def params(self, request: ChatRequest, *, stream: bool) -> SdkParams:
        """`chat.completions.create` arguments; a stream asks for usage where the server reports it."""
        params = self.base_params(request, to_openai_messages(request.messages))
        if request.tools:
            params["tools"] = to_openai_tools(request.tools)
        if request.stop:
            params["stop"] = list(request.stop)
        if stream and self._profile.capabilities.streaming_usage:
            params["stream_options"] = {"include_usage": True}
        return params

    @property
    def create(self) -> SdkCall:
        """The SDK client's POST to /chat/completions, as `chat.completions.create` makes it.

        Not `chat.completions.create` itself: before posting, it walks every argument against its
        TypedDict annotations (`async_maybe_transform`) to rename aliased keys and encode files and
        dates, a tenth of the router's CPU per call at 32 in flight; the bodies built here have none of
        those (plain JSON, no aliases). The SDK still sends, authenticates, raises its errors (an error
        event inside a stream too) and decodes the answer and the stream's events; they are read as JSON
        (`cast_to=object`), not built into the SDK's types.
        """
        return self._post

    # The SDK's own keyword (the driver passes `timeout=` to every SDK call): the transport's bound.
    async def _post(self, *, timeout: float, stream: bool = False, **body: Any) -> object:  # noqa: ASYNC109
        if stream:
            body["stream"] = True
        return await self._client.post(
            "/chat/completions",
            body=body,
            options={"timeout": timeout, "security": {"bearer_auth": True}},
            cast_to=object,  # the decoded JSON, read by `parse` and `_StreamAssembly`
            stream=stream,
            stream_cls=openai.AsyncStream[object],
        )

    def parse(self, answer: object, request: ChatRequest) -> ChatResponse:
        """Read a whole chat completion (or the error object some servers answer 200 with)."""
        if not isinstance(answer, dict):
            raise malformed(self.provider, f"answer is not a chat completion but {type(answer).__name__}")
        choices = answer.get("choices")
        embedded_error = answer.get("error")
        if not choices and embedded_error:
            # Some compatible servers answer 200 with an error object instead of a completion.
            raise classify_failure(
                provider=self.provider,
                status=None,
                detail=ErrorDetail.from_body({"error": embedded_error}),
                wording=self._profile.error_wording,
            )
        if not choices:
            raise malformed(self.provider, "answer has no choices")
        message = _object(choices[0]).get("message")
        if message is None:
            raise malformed(self.provider, "answer's choice has no message")
        raw_calls = tuple(
            _ToolCallParts(
                _text(call.get("id")),
                _text(_object(call["function"]).get("name")),
                _text(call["function"].get("arguments")),
            )
            for call in _object(message).get("tool_calls") or ()
            if _object(call).get("type", "function") == "function"
        )
        usage = answer.get("usage")
        parts = _Answer(
            content=_text(message.get("content")),
            raw_calls=raw_calls,
            raw_finish_reason=_text_or_none(choices[0].get("finish_reason")),
            refusal=_text(message.get("refusal")),
            usage=_usage_of(usage) if usage is not None else None,
            model=_text_or_none(answer.get("model")),
        )
        return self.finish(parts, request)

    def assembly(self, request: ChatRequest) -> _StreamAssembly:
        """A fresh assembly for one streamed completion."""
        return _StreamAssembly(self, request)

    def finish(self, answer: _Answer, request: ChatRequest) -> ChatResponse:
        """Check a completion's parts and make them a response (or the error they amount to)."""
        finish_reason = FINISH_REASONS.get(answer.raw_finish_reason or "")
        if finish_reason is None:
            raise malformed(self.provider, f"unknown finish reason {answer.raw_finish_reason!r}")
        tool_calls = self._tool_calls(answer.raw_calls, truncated=finish_reason == "length")
        usage = answer.usage
        if usage is None:
            log.warning(
                "Estimated usage, the server reported none provider=%s model=%s", self.provider, self._model
            )
            usage = estimate_usage(request, answer.content, tool_calls)
        if finish_reason == "content_filter" or answer.refusal:
            raise AdapterError(
                ErrorKind.CONTENT_FILTERED,
                answer.refusal or "the answer was withheld by the provider's content filter",
                provider=self.provider,
                usage=usage,
            )
        if tool_calls and finish_reason == "stop":
            # Some servers (vLLM with certain tool parsers) finish a tool call with "stop".
            finish_reason = "tool_calls"
        return ChatResponse(
            content=answer.content,
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            usage=usage,
            model=answer.model or self._model,
            provider=self.provider,
            usage_estimated=answer.usage is None,
        )

    def _tool_calls(self, raw_calls: tuple[_ToolCallParts, ...], *, truncated: bool) -> tuple[ToolCall, ...]:
        calls: list[ToolCall] = []
        for parts in raw_calls:
            if not parts.id or not parts.name:
                raise malformed(self.provider, "tool call lacks an id or a name")
            try:
                arguments = decode_arguments(parts.arguments, provider=self.provider, tool=parts.name)
            except AdapterError:
                if truncated:
                    # The answer hit max_tokens inside this call; it is incomplete, not malformed.
                    continue
                raise
            calls.append(ToolCall(id=parts.id, name=parts.name, arguments=arguments))
        return tuple(calls)


class OpenAIChatAdapter(SdkDriver):
    """A model behind a Chat Completions endpoint: the SDK driver speaking `OpenAIChatWire`."""

    wire_class = OpenAIChatWire
