"""The seam between transport and protocol: what a wire class gives the SDK driver.

`jesus_adapters.driver.SdkDriver` owns the SDK call (the deadline, error mapping, reading a stream,
closing it); a wire class per protocol (`anthropic_messages.AnthropicMessagesWire`,
`openai_chat.OpenAIChatWire`) owns what differs between providers' APIs: opening the SDK client,
building the request, reading the answer and assembling a stream. This follows pydantic-ai, which keeps
the protocol apart from the transport. `SdkWire` and the helpers below are what every wire shares.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.profiles import ProviderProfile
from jesus_adapters.sdk_errors import SdkExceptions
from jesus_adapters.types import AdapterConfig, ChatRequest, ChatResponse

SdkParams = dict[str, Any]
"""Keyword arguments for one SDK call (the SDKs type them as large TypedDicts per endpoint)."""

SdkCall = Callable[..., Awaitable[Any]]
"""An SDK endpoint's create method, called with `SdkParams`, `timeout=` and, for a stream, `stream=True`."""


class EventStream(Protocol):
    """An SDK's open stream of events (`anthropic.AsyncStream`, `openai.AsyncStream`)."""

    def __anext__(self) -> Awaitable[object]:
        """The next raw event; `StopAsyncIteration` at the end."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...


class StreamAssembly(Protocol):
    """What one stream has said so far."""

    def add(self, event: object) -> str:
        """Take in one raw event; return the text it adds."""
        ...

    def response(self) -> ChatResponse:
        """The whole answer, once the stream has ended; `AdapterError` when it ended too early."""
        ...


class SdkClient(Protocol):
    """What every SDK client offers besides its endpoints: closing it."""

    async def close(self) -> None:
        """Close the client's connection pool."""
        ...


ClientT = TypeVar("ClientT", bound=SdkClient)


class SdkWire(abc.ABC, Generic[ClientT]):
    """One provider API over one official SDK: its client, requests, answers and streams."""

    exceptions: ClassVar[SdkExceptions]
    """The SDK's exception classes, for the one error mapping."""

    def __init__(self, config: AdapterConfig, profile: ProviderProfile) -> None:
        self._model = config.model
        self._profile = profile
        self._client = self.open_client(
            config.api_key,
            base_url=config.base_url or profile.default_base_url,
            max_retries=0,  # the router owns retries and failover
            default_headers=dict(config.extra_headers),
        )

    @abc.abstractmethod
    def open_client(self, api_key: str | None, **options: Any) -> ClientT:
        """The SDK client for `api_key`, with the options every provider shares."""

    @property
    @abc.abstractmethod
    def create(self) -> SdkCall:
        """The SDK's create call: the whole answer, or with `stream=True` an `EventStream`."""

    @abc.abstractmethod
    def params(self, request: ChatRequest, *, stream: bool) -> SdkParams:
        """The SDK call's arguments for `request`."""

    @abc.abstractmethod
    def parse(self, answer: object, request: ChatRequest) -> ChatResponse:
        """Read a whole answer; `AdapterError` when it is not one."""

    @abc.abstractmethod
    def assembly(self, request: ChatRequest) -> StreamAssembly:
        """A fresh assembly for one streamed answer to `request`."""

    @property
    def provider(self) -> str:
        """The provider's name, for errors."""
        return self._profile.name

    def base_params(self, request: ChatRequest, messages: object) -> SdkParams:
        """The arguments every protocol sends: the model, the messages and the output limit."""
        limit = self._profile.max_tokens_field
        return {"model": self._model, "messages": messages, limit: request.max_tokens}

    async def aclose(self) -> None:
        """Close the SDK client and its connection pool."""
        await self._client.close()


def malformed(provider: str, what: str) -> AdapterError:
    """A `MalformedResponse` error: the answer does not fit the protocol."""
    return AdapterError(ErrorKind.MALFORMED_RESPONSE, what, provider=provider)


def tool_arguments(value: object, *, provider: str, tool: str) -> dict[str, Any]:
    """A tool call's arguments, which must be a JSON object."""
    if not isinstance(value, dict):
        raise malformed(provider, f"tool call {tool!r} has arguments that are not a JSON object")
    return value


def decode_arguments(raw: str | None, *, provider: str, tool: str) -> dict[str, Any]:
    """A tool call's arguments: a JSON object in a string ("" means no arguments)."""
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise malformed(provider, f"tool call {tool!r} has arguments that are not JSON: {exc}") from exc
    return tool_arguments(decoded, provider=provider, tool=tool)
