"""The interface every adapter implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from jesus_adapters.types import ChatRequest, ChatResponse, StreamEvent


class ModelAdapter(Protocol):
    """One model endpoint. Failures raise `jesus_adapters.errors.AdapterError`, never SDK errors."""

    @property
    def provider(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        """Send one request and return the whole answer."""
        ...

    def stream(self, request: ChatRequest, *, timeout_seconds: float) -> AsyncIterator[StreamEvent]:
        """Send one request and yield text deltas, then one `StreamDone` with the whole answer."""
        ...

    async def aclose(self) -> None:
        """Release the underlying HTTP client."""
        ...
