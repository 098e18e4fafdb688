"""The interface every adapter implements, and what every registered adapter holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from jesus_adapters.profiles import ProviderProfile
from jesus_adapters.types import AdapterConfig, ChatRequest, ChatResponse, StreamEvent


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


class ProfiledAdapter:
    """The state every adapter the registry builds shares: its configuration and its provider's profile."""

    def __init__(self, config: AdapterConfig, profile: ProviderProfile) -> None:
        self._config = config
        self._profile = profile

    @property
    def provider(self) -> str:
        """The provider's name, as the registry knows it."""
        return self._profile.name

    @property
    def model(self) -> str:
        """The model this adapter calls."""
        return self._config.model

    @property
    def profile(self) -> ProviderProfile:
        """The provider profile this adapter was built with."""
        return self._profile
