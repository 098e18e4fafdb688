"""A scriptable local HTTP server that speaks one provider's wire protocol (aiohttp on 127.0.0.1:0).

aiohttp rather than starlette: a fake must be able to drop a connection mid-answer, and aiohttp
hands the handler its transport.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from tests.providers.anthropic_wire import AnthropicWire
from tests.providers.behaviours import Behaviour, Drop, Fail, Hang, Raw, Reply, StreamFail
from tests.providers.openai_wire import Dialect, OpenAIWire

# How long a Hang without a limit waits at most, should the server never be stopped.
_FOREVER_SECONDS = 3600.0


class Wire(Protocol):
    """How one provider's protocol renders behaviours."""

    path: str
    base_path: str

    def request_problem(self, body: dict[str, Any]) -> str | None: ...

    def error_body(
        self, status: int, message: str, error_type: str | None, code: str | int | None
    ) -> Any: ...

    def stream_error_event(self, status: int, message: str, error_type: str | None) -> str: ...

    def complete_body(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]: ...

    def stream_events(self, reply: Reply, request: dict[str, Any]) -> tuple[list[str], list[str]]: ...


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received: path, headers (lower-case names) and decoded JSON body."""

    path: str
    headers: dict[str, str]
    json: Any


class FakeProvider:
    """A running fake: `.base_url` for the SDK, `.script(...)` to queue behaviours.

    Each request takes the next queued behaviour; when the queue is empty, `default` answers
    (when it is `None`, the fake answers 500 saying nothing was scripted, so a test notices).
    With `strict` (the default), a request the real provider would refuse (see `request_rules`) gets
    the provider's 400 instead and takes no behaviour. `requests` records every request, in order.
    """

    def __init__(self, wire: Wire, *, default: Behaviour | None = None, strict: bool = True) -> None:
        self.wire = wire
        self.default = default
        self.strict = strict
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._queue: deque[Behaviour] = deque()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def script(self, *behaviours: Behaviour) -> FakeProvider:
        """Queue `behaviours` for the next requests, in order; returns the fake for chaining."""
        self._queue.extend(behaviours)
        return self

    @property
    def pending(self) -> int:
        """How many scripted behaviours no request has taken yet."""
        return len(self._queue)

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post(self.wire.path, self._handle)
        app.router.add_route("*", "/{tail:.*}", self._unknown_path)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.base_url = f"http://127.0.0.1:{port}{self.wire.base_path}"

    async def stop(self) -> None:
        """Stop listening; hanging requests end at once."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _unknown_path(self, request: web.Request) -> web.StreamResponse:
        body = self.wire.error_body(404, f"fake provider: no route {request.path}", None, None)
        return web.json_response(body, status=404)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            payload = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            payload = None
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append(RecordedRequest(request.path, headers, payload))
        body = payload if isinstance(payload, dict) else {}
        problem = self.wire.request_problem(body) if self.strict else None
        if problem is not None:
            return web.json_response(self.wire.error_body(400, problem, None, None), status=400)
        behaviour = self._queue.popleft() if self._queue else self.default
        if behaviour is None:
            message = f"fake provider: nothing scripted for request {len(self.requests)}"
            return web.json_response(self.wire.error_body(500, message, None, None), status=500)
        return await self._perform(behaviour, request, body)

    async def _perform(
        self, behaviour: Behaviour, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        if isinstance(behaviour, Reply):
            if behaviour.delay_seconds:
                await asyncio.sleep(behaviour.delay_seconds)
            if body.get("stream"):
                return await self._stream(behaviour, request, body)
            return web.json_response(self.wire.complete_body(behaviour, body))
        if isinstance(behaviour, Fail):
            error = self.wire.error_body(behaviour.status, behaviour.message, behaviour.type, behaviour.code)
            return web.json_response(error, status=behaviour.status, headers=behaviour.headers)
        if isinstance(behaviour, StreamFail):
            return await self._stream_then_fail(behaviour, request, body)
        if isinstance(behaviour, Raw):
            return web.Response(
                body=behaviour.body if isinstance(behaviour.body, bytes) else behaviour.body.encode(),
                status=behaviour.status,
                content_type=behaviour.content_type,
                headers=behaviour.headers,
            )
        if isinstance(behaviour, Hang):
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), behaviour.seconds or _FOREVER_SECONDS)
            return self._drop(request)
        if isinstance(behaviour, Drop):
            return self._drop(request)
        raise TypeError(f"unknown behaviour {behaviour!r}")

    def _drop(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        return web.Response()

    async def _open_stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        return response

    async def _stream(self, reply: Reply, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        head, end = self.wire.stream_events(reply, body)
        events = head if reply.omit_end else head + end
        response = await self._open_stream(request)
        for number, event in enumerate(events):
            if reply.drop_after_events is not None and number >= reply.drop_after_events:
                return self._drop(request)
            if number and reply.event_gap_seconds:
                await asyncio.sleep(reply.event_gap_seconds)
            await response.write(event.encode())
        await response.write_eof()
        return response

    async def _stream_then_fail(
        self, failure: StreamFail, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        head, _ = self.wire.stream_events(Reply(text="partial answer " * 4), body)
        response = await self._open_stream(request)
        for event in head[: failure.after_events]:
            await response.write(event.encode())
        await response.write(
            self.wire.stream_error_event(failure.status, failure.message, failure.type).encode()
        )
        await response.write_eof()
        return response


@asynccontextmanager
async def serve(
    wire: Wire, *, default: Behaviour | None = None, strict: bool = True
) -> AsyncIterator[FakeProvider]:
    """Run a fake provider for `wire` for the duration of the block."""
    fake = FakeProvider(wire, default=default, strict=strict)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@contextmanager
def serve_in_thread(
    wire: Wire, *, default: Behaviour | None = None, strict: bool = True
) -> Iterator[FakeProvider]:
    """`serve`, on an event loop of its own in a thread: for tests that are not async themselves.
    Script it before the calls it answers (`script` is not thread-safe against a request in flight)."""
    fake = FakeProvider(wire, default=default, strict=strict)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def serve_openai(
    dialect: Dialect = "openai", *, default: Behaviour | None = None, strict: bool = True
) -> AbstractAsyncContextManager[FakeProvider]:
    """A fake OpenAI Chat Completions server (`dialect`: "openai", "vllm" or "llamacpp").

    `base_url` ends in /v1, as the openai SDK expects.
    """
    return serve(OpenAIWire(dialect), default=default, strict=strict)


def serve_anthropic(
    *, default: Behaviour | None = None, strict: bool = True
) -> AbstractAsyncContextManager[FakeProvider]:
    """A fake Anthropic Messages server; `base_url` is the host root, as the anthropic SDK expects."""
    return serve(AnthropicWire(), default=default, strict=strict)


def unused_base_url(base_path: str = "/v1") -> str:
    """A loopback URL nobody listens on: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{base_path}"
