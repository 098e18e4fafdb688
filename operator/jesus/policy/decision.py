"""What every policy engine answers, and the one way an engine turns a raw result into it.

An engine that cannot decide (server unreachable, timeout, broken policy, undefined or malformed
result) never answers "allow": it returns a Decision that denies, says why, and carries the error, so
the operator can tell "the policy said no" (PolicyDenied) from "there was no policy answer"
(PolicyUnavailable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jesus.api import AgentRunReason, PolicyDecision
from jesus.logic.policy_input import PolicyInput

DECISION_PACKAGE = "jesus.admission"
DECISION_RULE = "decision"
DECISION_REF = f"data.{DECISION_PACKAGE}.{DECISION_RULE}"
"""The Rego reference both engines evaluate."""
DECISION_PATH = f"{DECISION_PACKAGE.replace('.', '/')}/{DECISION_RULE}"
"""The same reference as a path (the OPA Data API's URL, the embedded engine's entrypoint)."""

# The API's bounds on AgentRun status.policy; beyond them the status write would be rejected.
STATUS_MAX_MESSAGES = 64
STATUS_MAX_MESSAGE_LENGTH = 1024


@dataclass(frozen=True)
class Decision:
    """An admission decision: whether the run may start, why not, and what to watch out for."""

    allow: bool
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    engine: str
    """Which engine decided: "embedded" or "opa-server"."""
    error: str | None = None
    """Why the engine had no decision from the policy; None when the policy decided."""

    @property
    def decided(self) -> bool:
        """Whether the policy itself decided (as opposed to the engine failing closed)."""
        return self.error is None

    @property
    def condition_reason(self) -> AgentRunReason:
        """The reason of the AgentRun's PolicyAllowed condition: allowed, denied, or no decision."""
        if self.allow:
            return AgentRunReason.POLICY_ALLOWED
        return AgentRunReason.POLICY_DENIED if self.decided else AgentRunReason.POLICY_UNAVAILABLE

    def to_status(self, evaluated_at: str) -> PolicyDecision:
        """The decision as AgentRun status.policy, cut to the bounds the API server enforces."""
        return PolicyDecision(
            allowed=self.allow,
            reasons=_bounded(self.reasons) or None,
            warnings=_bounded(self.warnings) or None,
            evaluated_at=evaluated_at,
        )

    def as_json(self) -> dict[str, Any]:
        """The decision as the policy states it: {allow, reasons, warnings}."""
        return {"allow": self.allow, "reasons": list(self.reasons), "warnings": list(self.warnings)}


class PolicyEngine(Protocol):
    """Evaluates the admission policy over one input document."""

    name: str

    async def decide(self, policy_input: PolicyInput) -> Decision:
        """The decision for `policy_input`; never raises for evaluation failures (fails closed)."""
        ...


class PolicyLoadError(Exception):
    """Policies or their data could not be loaded; the message names the file and the problem."""


def fail_closed(engine: str, why: str) -> Decision:
    """A denying Decision for when `engine` has no decision; `why` says what went wrong."""
    reason = f"no policy decision ({engine}): {why}; the run is not admitted without one"
    return Decision(allow=False, reasons=(reason,), warnings=(), engine=engine, error=why)


def decision_from_result(result: Any, engine: str) -> Decision:
    """Validate a raw `data.jesus.admission.decision` value; anything but the documented shape fails
    closed."""
    if not isinstance(result, Mapping):
        return fail_closed(engine, f"{DECISION_REF} is {_describe(result)}, not an object")
    allow = result.get("allow")
    reasons = result.get("reasons")
    warnings = result.get("warnings")
    if not isinstance(allow, bool):
        return fail_closed(engine, f"{DECISION_REF}.allow is {_describe(allow)}, not a boolean")
    for field, value in (("reasons", reasons), ("warnings", warnings)):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return fail_closed(engine, f"{DECISION_REF}.{field} is {_describe(value)}, not a list of strings")
    assert isinstance(reasons, list) and isinstance(warnings, list)
    if allow and reasons:
        return fail_closed(engine, f"{DECISION_REF} allows the run but gives reasons to deny it")
    if not allow and not reasons:
        # A denial nobody can explain is useless to the run's owner; say so rather than guess.
        reasons = ["the policy denied the run without giving a reason"]
    # Sorted here, not only in Rego: rego-cpp orders strings by their escaped form, OPA by code point.
    return Decision(
        allow=allow, reasons=tuple(sorted(reasons)), warnings=tuple(sorted(warnings)), engine=engine
    )


def _bounded(messages: tuple[str, ...]) -> list[str]:
    kept = [
        m if len(m) <= STATUS_MAX_MESSAGE_LENGTH else m[: STATUS_MAX_MESSAGE_LENGTH - 3] + "..."
        for m in messages[:STATUS_MAX_MESSAGES]
    ]
    if len(messages) > STATUS_MAX_MESSAGES:
        kept[-1] = f"... and {len(messages) - STATUS_MAX_MESSAGES + 1} more"
    return kept


def _describe(value: Any) -> str:
    if value is None:
        return "missing"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
