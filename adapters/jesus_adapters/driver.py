"""The SDK driver: one model call over an official SDK, whatever the wire protocol.

`SdkDriver` is the adapter the registry hands out for every SDK-backed provider. It owns what every
call shares: the capability check, the deadline (the only place a model call's timeout is applied, see
ADR 0009), mapping SDK exceptions into the one taxonomy, reading a stream event by event and closing
it. Its wire class (`jesus_adapters.wire.SdkWire`) owns the provider's request and answer formats.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, ClassVar, TypeVar

from jesus_adapters.base import ProfiledAdapter
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.profiles import ProviderProfile
from jesus_adapters.sdk_errors import SHAPE_ERRORS, map_sdk_error
from jesus_adapters.types import AdapterConfig, ChatRequest, ChatResponse, StreamDone, StreamEvent, TextDelta
from jesus_adapters.wire import EventStream, SdkParams, SdkWire, malformed

T = TypeVar("T")


class SdkDriver(ProfiledAdapter):
    """A model endpoint behind an official SDK, speaking the wire protocol of its `wire_class`.

    Each protocol's adapter is this driver with its wire class set (`AnthropicAdapter`,
    `OpenAIChatAdapter`); the registry's profiles name those classes as their factories.
    """

    wire_class: ClassVar[type[SdkWire[Any]]]

    def __init__(self, config: AdapterConfig, profile: ProviderProfile) -> None:
        super().__init__(config, profile)
        self._wire = self.wire_class(config, profile)

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        """Send `request` and return the whole answer; `timeout_seconds` bounds the whole call."""
        params = self._params(request, stream=False)
        try:
            # The SDK gets the figure too: its transport then closes a read that outlives it.
            async with asyncio.timeout(timeout_seconds):
                answer: object = await self._wire.create(**params, timeout=timeout_seconds)
        except Exception as exc:
            raise self._error(exc) from exc
        return self._read(lambda: self._wire.parse(answer, request), "answer lacks a field")

    async def stream(self, request: ChatRequest, *, timeout_seconds: float) -> AsyncIterator[StreamEvent]:
        """Stream `request`: text deltas, then one `StreamDone`.

        `timeout_seconds` bounds the wait for the first event and every gap between events, so a hung
        server fails fast while a long, live answer is not cut off. Where the profile says the
        endpoint cannot stream, the whole answer comes as one delta.
        """
        if not self._profile.capabilities.streaming:
            response = await self.complete(request, timeout_seconds=timeout_seconds)
            if response.content:
                yield TextDelta(response.content)
            yield StreamDone(response)
            return
        params = self._params(request, stream=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        try:
            async with asyncio.timeout_at(deadline):
                events: EventStream = await self._wire.create(**params, stream=True, timeout=timeout_seconds)
        except Exception as exc:
            raise self._error(exc) from exc
        assembly = self._wire.assembly(request)
        try:
            while True:
                event = await self._next_event(events, deadline)
                if event is _END:
                    break
                deadline = loop.time() + timeout_seconds
                text = self._read(
                    partial(assembly.add, event), "stream event lacks a field or has a bad value"
                )
                if text:
                    yield TextDelta(text)
        finally:
            # Closing a broken stream can fail too; the error that ended it is the one to report.
            with contextlib.suppress(Exception):
                await events.close()
        yield StreamDone(self._read(assembly.response, "stream lacks a field"))

    async def aclose(self) -> None:
        """Close the SDK client and its connection pool."""
        await self._wire.aclose()

    def _params(self, request: ChatRequest, *, stream: bool) -> SdkParams:
        if request.tools and not self._profile.capabilities.tool_calling:
            raise AdapterError(
                ErrorKind.INVALID_REQUEST,
                f"model {self.model!r} is configured without tool calling, but the request has tools",
                provider=self.provider,
            )
        return self._wire.params(request, stream=stream)

    async def _next_event(self, events: EventStream, deadline: float) -> object:
        try:
            async with asyncio.timeout_at(deadline):
                return await events.__anext__()
        except StopAsyncIteration:
            return _END
        except Exception as exc:
            raise self._error(exc) from exc

    def _read(self, read: Callable[[], T], what: str) -> T:
        """Run a wire's reading of an answer; a missing field or bad value is a malformed answer."""
        try:
            return read()
        except SHAPE_ERRORS as exc:
            # The SDKs build their models without validation; a missing field surfaces here.
            raise malformed(self.provider, f"{what}: {exc}") from exc

    def _error(self, exc: BaseException) -> AdapterError:
        return map_sdk_error(
            exc, provider=self.provider, sdk=self._wire.exceptions, wording=self._profile.error_wording
        )


_END = object()  # the end of a stream, as `_next_event` reports it
