"""What the router records for every call: attempts, fallbacks, usage, cost and latency."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AttemptOutcome = Literal["ok", "error", "skipped"]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One try on one adapter. `error_kind` is an ErrorKind value, or `CircuitOpen` when skipped."""

    adapter: str
    outcome: AttemptOutcome
    latency_ms: float
    error_kind: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FallbackRecord:
    """The router moved from one adapter to the next, and why; `error_kind` is the failure's class
    (an ErrorKind value, `CircuitOpen` or `NoAdapterAvailable`), as AgentRun status `errorClass`."""

    from_adapter: str
    to_adapter: str
    reason: str
    error_kind: str = ""


@dataclass(slots=True)
class CallRecord:
    """One model call as the run sees it: which adapter answered, at what price, after which failures.

    Money is integer micro-units. `outcome` is `ok` or the reason the call failed.
    """

    call_id: str
    run: str
    outcome: str = "ok"
    adapter: str | None = None
    provider: str | None = None
    model: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    fallbacks: list[FallbackRecord] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micros: int = 0
    latency_ms: float = 0.0
    streamed: bool = False
    error: str | None = None

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view with camelCase keys, as status and result records use."""
        # Built by hand: dataclasses.asdict deep-copies and costs more than the rest of a call.
        return {
            "callId": self.call_id,
            "run": self.run,
            "outcome": self.outcome,
            "adapter": self.adapter,
            "provider": self.provider,
            "model": self.model,
            "attempts": [
                {
                    "adapter": a.adapter,
                    "outcome": a.outcome,
                    "latencyMs": round(a.latency_ms, 3),
                    "errorKind": a.error_kind,
                    "error": a.error,
                }
                for a in self.attempts
            ],
            "fallbacks": [
                {"from": f.from_adapter, "to": f.to_adapter, "errorClass": f.error_kind, "reason": f.reason}
                for f in self.fallbacks
            ],
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "costMicros": self.cost_micros,
            "latencyMs": round(self.latency_ms, 3),
            "streamed": self.streamed,
            "error": self.error,
        }
