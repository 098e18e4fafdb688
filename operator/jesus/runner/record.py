"""The result record of one run: outcome, per-call usage and cost, fallbacks, tools, digest, timings."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from jesus.api.common import format_micros

RECORD_VERSION = 1


class RunOutcome(enum.StrEnum):
    """How a run ended. Everything but Succeeded comes with a reason in the record."""

    SUCCEEDED = "Succeeded"
    MAX_TURNS_REACHED = "MaxTurnsReached"
    LIMIT_EXCEEDED = "LimitExceeded"  # the run's token or cost allowance
    TIMED_OUT = "TimedOut"
    MODEL_FAILED = "ModelFailed"  # no adapter in the chain answered
    TOOL_SERVER_FAILED = "ToolServerFailed"  # a tool server could not be started or reached
    INVALID_SPEC = "InvalidSpec"
    POLICY_DENIED = "PolicyDenied"
    BUDGET_EXCEEDED = "BudgetExceeded"
    FAILED = "Failed"  # anything else, with the error in the reason

    @property
    def succeeded(self) -> bool:
        """Whether the run did its job."""
        return self is RunOutcome.SUCCEEDED


@dataclass(slots=True)
class RunRecord:
    """Everything a run leaves behind besides its artifacts' content. JSON via `to_dict`."""

    run: str
    namespace: str
    outcome: RunOutcome = RunOutcome.FAILED
    reason: str = ""
    final_answer: str | None = None
    turns: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    spec_digest: str | None = None
    dry_run: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float = 0.0
    policy: dict[str, Any] | None = None
    budgets: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reflection: dict[str, Any] | None = None
    """The LAW-REFLECT-001 verdict and the reflection itself (jesus.logic.reflection), when asked for."""

    @property
    def input_tokens(self) -> int:
        """Input tokens of all calls."""
        return sum(int(call.get("inputTokens", 0)) for call in self.calls)

    @property
    def output_tokens(self) -> int:
        """Output tokens of all calls."""
        return sum(int(call.get("outputTokens", 0)) for call in self.calls)

    @property
    def cost_micros(self) -> int:
        """Cost of all calls, in micro-units."""
        return sum(int(call.get("costMicros", 0)) for call in self.calls)

    @property
    def fallbacks(self) -> list[dict[str, Any]]:
        """Every fallback of every call, in order."""
        return [fallback for call in self.calls for fallback in call.get("fallbacks", [])]

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (camelCase keys, money in micro-units and as a decimal)."""
        return {
            "recordVersion": RECORD_VERSION,
            "run": self.run,
            "namespace": self.namespace,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "dryRun": self.dry_run,
            "finalAnswer": self.final_answer,
            "turns": self.turns,
            "usage": {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens},
            "costMicros": self.cost_micros,
            "cost": format_micros(self.cost_micros, places=6),
            "calls": self.calls,
            "fallbacks": self.fallbacks,
            "toolCalls": self.tool_calls,
            "artifacts": self.artifacts,
            "specDigest": self.spec_digest,
            "policy": self.policy,
            "budgets": self.budgets,
            "warnings": self.warnings,
            "reflection": self.reflection,
            "timings": {
                "startedAt": self.started_at,
                "finishedAt": self.finished_at,
                "durationMs": round(self.duration_ms, 3),
            },
        }
