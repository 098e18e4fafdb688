"""Stream plumbing of the router: waiting for a stream's first event, and closing a stream quietly."""

from __future__ import annotations

from collections.abc import AsyncIterator

from jesus.router.logsafe import router_logger
from jesus.router.routed import RoutedAdapter
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.types import ChatRequest, StreamDone, TextDelta

log = router_logger("jesus.router.core")  # the name the router's call lines have always had

StreamEvent = TextDelta | StreamDone


async def first_event(
    routed: RoutedAdapter, sized: ChatRequest, timeout_seconds: float
) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
    """Open `routed`'s stream and wait for its first event: until then, a stream can still fail over."""
    events = aiter(routed.adapter.stream(sized, timeout_seconds=timeout_seconds))
    try:
        first = await anext(events)
    except StopAsyncIteration:
        raise AdapterError(
            ErrorKind.MALFORMED_RESPONSE, "stream ended without an answer", provider=routed.name
        ) from None
    except BaseException:
        await close_stream(events)
        raise
    return first, events


async def close_stream(events: AsyncIterator[object]) -> None:
    """Close `events` if it can be closed; a failure to close is logged, never raised."""
    close = getattr(events, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken stream must not mask the real error
            log.debug("Closing a model stream failed", exc_info=True)
