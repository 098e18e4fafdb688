"""The `scripted` adapter: canned replies for dry runs, metered as if they were real.

Replies come from `AdapterConfig.scripted_replies`, one per call, in order. A reply with zero usage
gets estimated usage (about four characters per token, see `jesus_adapters.estimate`), so the
router prices a dry run with the ModelAdapter's real prices. Running out of replies fails the call
with an `InvalidRequest` error that says how many replies there were; it is not retryable, so the
router does not fail over to another scripted adapter by accident.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from jesus_adapters.base import ProfiledAdapter
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.estimate import estimate_usage
from jesus_adapters.profiles import ProviderProfile
from jesus_adapters.types import (
    AdapterConfig,
    ChatRequest,
    ChatResponse,
    StreamDone,
    StreamEvent,
    TextDelta,
    Usage,
)

# Streamed replies come in word-sized pieces, whitespace kept, like a real stream.
_PIECE = re.compile(r"\S+\s*|\s+")


class ScriptedAdapter(ProfiledAdapter):
    """Answers each call with the next scripted reply; never touches the network."""

    def __init__(self, config: AdapterConfig, profile: ProviderProfile) -> None:
        super().__init__(config, profile)
        self._replies = config.scripted_replies
        self._next = 0
        self._lock = asyncio.Lock()

    @property
    def calls_made(self) -> int:
        """How many replies have been handed out."""
        return self._next

    @property
    def replies_left(self) -> int:
        """How many scripted replies remain."""
        return len(self._replies) - self._next

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        """The next scripted reply, with usage estimated where the script gives none."""
        async with self._lock:
            if self._next >= len(self._replies):
                raise AdapterError(
                    ErrorKind.INVALID_REQUEST,
                    f"model {self.model!r} has no scripted reply left for call {self._next + 1} "
                    f"({len(self._replies)} scripted)",
                    provider=self.provider,
                )
            reply = self._replies[self._next]
            self._next += 1
        estimated = reply.usage == Usage()
        usage = estimate_usage(request, reply.content, reply.tool_calls) if estimated else reply.usage
        return ChatResponse(
            content=reply.content,
            tool_calls=reply.tool_calls,
            finish_reason="tool_calls" if reply.tool_calls else reply.finish_reason,
            usage=usage,
            model=reply.model or self.model,
            provider=self.provider,
            usage_estimated=estimated,
        )

    async def stream(self, request: ChatRequest, *, timeout_seconds: float) -> AsyncIterator[StreamEvent]:
        """The next scripted reply as word-sized text deltas, then `StreamDone`."""
        response = await self.complete(request, timeout_seconds=timeout_seconds)
        for piece in _PIECE.findall(response.content):
            yield TextDelta(piece)
        yield StreamDone(response)

    async def aclose(self) -> None:
        """Nothing to release."""
