"""The `scripted` adapter: canned replies for dry runs and tests, metered as if they were real.

Replies come from `AdapterConfig.scripted_replies`, one per call. Each run (the request's
`metadata["run"]` within `metadata["namespace"]`) has its own cursor and plays the script from the
start, so concurrent runs get the same deterministic sequence, independent of each other; requests
without a run share one cursor. A turn may be a `ScriptedFailure`, raised as that kind of AdapterError.

A reply with zero usage gets estimated usage (about four characters per token, see
`jesus_adapters.estimate`; output capped at the request's `max_tokens`, as a provider stops there), so
the router prices a dry run with the ModelAdapter's real prices. With `scripted_cycle` the script
starts over when it ends: a dry run never runs out. Otherwise a script that ends on a failure repeats
it, and one that ends on a reply fails the run's next call with an `InvalidRequest` error that says how
many replies there were; it is not retryable, so the router does not fail over to another scripted
adapter by accident.

Cursors are per-run state in a shared adapter, so at most `MAX_TRACKED_RUNS` are kept, the least
recently used forgotten first (`forget_run` drops one at once).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import AsyncIterator

from jesus_adapters.base import ProfiledAdapter
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.estimate import estimate_usage
from jesus_adapters.profiles import ProviderProfile
from jesus_adapters.types import (
    AdapterConfig,
    ChatRequest,
    ChatResponse,
    ScriptedFailure,
    StreamDone,
    StreamEvent,
    TextDelta,
    Usage,
)

# Streamed replies come in word-sized pieces, whitespace kept, like a real stream.
_PIECE = re.compile(r"\S+\s*|\s+")

# A router serves thousands of runs over its life; a cursor is a few dozen bytes, so this bounds the
# memory at well under a megabyte while no run that is still calling is likely to be forgotten.
MAX_TRACKED_RUNS = 4096

RunKey = tuple[str, str]  # (namespace, run)


def run_key(request: ChatRequest) -> RunKey:
    """Which run a request belongs to, as the router stamps it in the request's metadata."""
    return request.metadata.get("namespace", ""), request.metadata.get("run", "")


class RunCursors:
    """Each run's next turn, for at most `limit` runs (least recently used forgotten first)."""

    def __init__(self, limit: int = MAX_TRACKED_RUNS) -> None:
        self._limit = limit
        self._turns: OrderedDict[RunKey, int] = OrderedDict()

    def take(self, key: RunKey) -> int:
        """The run's next turn (0 for a run not seen, or forgotten), and move its cursor past it."""
        turn = self._turns.pop(key, 0)
        self._turns[key] = turn + 1
        while len(self._turns) > self._limit:
            self._turns.popitem(last=False)
        return turn

    def turns_taken(self, key: RunKey) -> int:
        """How many turns the run has taken."""
        return self._turns.get(key, 0)

    def forget(self, key: RunKey) -> None:
        """Drop a run's cursor (it ended); a later call of that run starts the script again."""
        self._turns.pop(key, None)

    def __len__(self) -> int:
        return len(self._turns)


class ScriptedAdapter(ProfiledAdapter):
    """Answers each run's calls with its next scripted turn; never touches the network."""

    def __init__(self, config: AdapterConfig, profile: ProviderProfile) -> None:
        super().__init__(config, profile)
        self._turns = config.scripted_replies
        self._cycle = config.scripted_cycle
        self._cursors = RunCursors()

    def calls_made(self, run: str = "", namespace: str = "") -> int:
        """How many turns one run has taken."""
        return self._cursors.turns_taken((namespace, run))

    @property
    def tracked_runs(self) -> int:
        """How many runs' cursors are kept."""
        return len(self._cursors)

    def forget_run(self, run: str, namespace: str = "") -> None:
        """Forget a run's cursor (its token was revoked or expired)."""
        self._cursors.forget((namespace, run))

    def _turn(self, request: ChatRequest) -> ChatResponse:
        key = run_key(request)
        number = self._cursors.take(key)
        count = len(self._turns)
        if number < count or (count and self._cycle):
            turn = self._turns[number % count]
        elif count and isinstance(self._turns[-1], ScriptedFailure):
            turn = self._turns[-1]
        else:
            namespace, run = key
            of_run = f" of run {namespace + '/' if namespace else ''}{run}" if run else ""
            raise AdapterError(
                ErrorKind.INVALID_REQUEST,
                f"model {self.model!r} has no scripted reply left for call {number + 1} ({count} scripted)"
                + of_run,
                provider=self.provider,
            )
        if isinstance(turn, ScriptedFailure):
            raise AdapterError(
                ErrorKind(turn.kind), turn.message or f"scripted {turn.kind}", provider=self.provider
            )
        return turn

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        """The run's next scripted reply, with usage estimated where the script gives none."""
        reply = self._turn(request)
        estimated = reply.usage == Usage()
        usage = reply.usage
        if estimated:
            guess = estimate_usage(request, reply.content, reply.tool_calls)
            usage = Usage(guess.input_tokens, min(guess.output_tokens, max(1, request.max_tokens)))
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
        """The run's next scripted reply as word-sized text deltas, then `StreamDone`."""
        response = await self.complete(request, timeout_seconds=timeout_seconds)
        for piece in _PIECE.findall(response.content):
            yield TextDelta(piece)
        yield StreamDone(response)

    async def aclose(self) -> None:
        """Nothing to release."""
