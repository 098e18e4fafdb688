"""Test doubles that implement the adapter protocol with scripted outcomes, plus a controllable clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from tests.builders.chat import failure

from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.types import ChatRequest, ChatResponse, StreamDone, TextDelta

HANG: Literal["hang"] = "hang"
BREAK_MID_STREAM: Literal["break"] = "break"

Step = ChatResponse | AdapterError | Exception | Literal["hang", "break"]


@dataclass
class FakeAdapter:
    """Answers from a script, one step per call; repeats the last step when the script runs out."""

    script: list[Step]
    provider: str = "fake"
    model: str = "fake-model"
    received: list[ChatRequest] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    def _next(self) -> Step:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    async def _hang(self, timeout_seconds: float) -> None:
        """Wait out the deadline and fail as every adapter must: the adapter owns its timeout."""
        await asyncio.sleep(timeout_seconds)
        raise failure(ErrorKind.TIMEOUT)

    async def _take(self, request: ChatRequest, timeout_seconds: float) -> ChatResponse | Literal["break"]:
        """Record the call and play the next step: hang out the deadline, raise, or hand it back."""
        self.received.append(request)
        self.timeouts.append(timeout_seconds)
        step = self._next()
        if step == HANG:
            await self._hang(timeout_seconds)
        if isinstance(step, Exception):
            raise step
        assert isinstance(step, ChatResponse) or step == BREAK_MID_STREAM
        return step

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        step = await self._take(request, timeout_seconds)
        assert isinstance(step, ChatResponse)
        return step

    async def stream(
        self, request: ChatRequest, *, timeout_seconds: float
    ) -> AsyncIterator[TextDelta | StreamDone]:
        step = await self._take(request, timeout_seconds)
        if step == BREAK_MID_STREAM:
            yield TextDelta("partial ")
            raise failure(ErrorKind.CONNECTION)
        assert isinstance(step, ChatResponse)
        for word in step.content.split(" "):
            yield TextDelta(word + " ")
        yield StreamDone(step)

    async def aclose(self) -> None:
        return None


@dataclass
class FakeClock:
    """A monotonic clock that only moves when told to, or when the router sleeps."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
