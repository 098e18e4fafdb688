"""Pure decisions of the AgentRun reconciler: dependencies, the runner Job's outcome, the result the
runner reports, retries, trace ids.

The runner reports its result in its container's termination message (at most 4096 bytes, as the
kubelet keeps it): totals, the calls with the adapter that served each and the fallbacks taken, and the
artifact references. The cost in it is the router's metering, relayed by the runner.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from jesus.api.agentrun import (
    AgentRun,
    AgentRunPhase,
    ArtifactRef,
    Attempt,
    ModelCall,
    Usage,
)
from jesus.api.common import Condition
from jesus.logic.reflection import Item

TERMINATION_MESSAGE_LIMIT = 4096
_M = TypeVar("_M", bound=BaseModel)
RESULT_VERSION = 1


# --- dependencies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DependencyState:
    """Where a run's dependencies are."""

    waiting: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return not (self.waiting or self.failed or self.missing)

    def describe(self) -> str:
        parts = []
        if self.failed:
            parts.append(f"failed or denied: {', '.join(self.failed)}")
        if self.missing:
            parts.append(f"not found: {', '.join(self.missing)}")
        if self.waiting:
            parts.append(f"not finished: {', '.join(self.waiting)}")
        return "; ".join(parts) if parts else "all dependencies succeeded"


def dependency_state(run: AgentRun, phases: Mapping[str, AgentRunPhase | None]) -> DependencyState:
    """Classify each dependsOn entry by the phase of that run (None: it does not exist)."""
    waiting, failed, missing = [], [], []
    for name in run.spec.depends_on or []:
        phase = phases.get(name)
        if phase is None:
            missing.append(name)
        elif phase in (AgentRunPhase.FAILED, AgentRunPhase.DENIED):
            failed.append(name)
        elif phase != AgentRunPhase.SUCCEEDED:
            waiting.append(name)
    return DependencyState(tuple(waiting), tuple(failed), tuple(missing))


# --- the runner's result -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """What the runner reported: outcome, totals, calls and artifacts."""

    outcome: str
    reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micros: int = 0
    calls: tuple[ModelCall, ...] = ()
    artifacts: tuple[ArtifactRef, ...] = ()
    spec_digest: str | None = None
    reflection: ReflectionSummary | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome == "Succeeded"


@dataclass(frozen=True)
class ReflectionSummary:
    """The reflection's verdict as the runner reports it: passed, and the failed items' names."""

    passed: bool
    failed: tuple[str, ...] = ()

    def describe(self) -> str:
        """The condition's message."""
        if self.passed:
            return "the reflection passed LAW-REFLECT-001"
        return _REFLECTION_FAILED_PREFIX + ", ".join(self.failed)


_REFLECTION_FAILED_PREFIX = "the reflection failed LAW-REFLECT-001 on: "


def reflection_failed_items(condition: Condition) -> tuple[str, ...]:
    """The failed checklist items a Reflected condition names (only the checklist's own item names, so
    a metric labelled by them stays bounded)."""
    message = condition.message or ""
    if not message.startswith(_REFLECTION_FAILED_PREFIX):
        return ()
    known = {item.value for item in Item}
    named = (part.strip() for part in message.removeprefix(_REFLECTION_FAILED_PREFIX).split(","))
    return tuple(part for part in named if part in known)


def _reflection_summary(block: object) -> dict[str, Any] | None:
    if not isinstance(block, Mapping):
        return None
    return {
        "passed": bool(block.get("passed")),
        "failed": [str(f)[:32] for f in block.get("failed", [])][:16],
    }


def _parse_reflection(block: object) -> ReflectionSummary | None:
    if not isinstance(block, Mapping) or not isinstance(block.get("passed"), bool):
        return None
    failed = block.get("failed", [])
    if not isinstance(failed, list):
        return None
    return ReflectionSummary(block["passed"], tuple(str(item)[:32] for item in failed[:16]))


def _adapter_name(key: object) -> str:
    """The router keys adapters `<namespace>/<name>`; status names the ModelAdapter."""
    return str(key or "none").rsplit("/", 1)[-1]


def _call(call: Mapping[str, Any]) -> dict[str, Any]:
    fallbacks = [
        {
            "adapter": _adapter_name(f.get("from")),
            "errorClass": str(f.get("errorClass") or f.get("reason", ""))[:64],
        }
        for f in call.get("fallbacks", [])
    ]
    return {
        "adapter": _adapter_name(call.get("adapter")),
        "model": call.get("model") or "",
        "fallbacks": fallbacks or None,
        "usage": {
            "inputTokens": int(call.get("inputTokens", 0)),
            "outputTokens": int(call.get("outputTokens", 0)),
        },
        "costMicros": int(call.get("costMicros", 0)),
        "durationMilliseconds": int(call.get("latencyMs", 0)),
    }


def summarize_record(record: Mapping[str, Any], limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """The runner's result record squeezed into a termination message of at most `limit` bytes.

    Totals always fit; calls and artifacts are dropped from the end when they do not, and the count of
    dropped calls is kept so nothing is silently lost.
    """
    usage = record.get("usage", {})
    summary: dict[str, Any] = {
        "v": RESULT_VERSION,
        "outcome": record.get("outcome", "Failed"),
        "reason": str(record.get("reason", ""))[:512],
        "usage": {
            "inputTokens": int(usage.get("inputTokens", 0)),
            "outputTokens": int(usage.get("outputTokens", 0)),
        },
        "costMicros": int(record.get("costMicros", 0)),
        "specDigest": record.get("specDigest"),
        "calls": [_call(c) for c in record.get("calls", [])],
        "artifacts": [
            {k: v for k, v in a.items() if k in ("name", "uri", "sizeBytes", "digest")}
            for a in record.get("artifacts", [])
            if a.get("uri")
        ],
        "droppedCalls": 0,
        "reflection": _reflection_summary(record.get("reflection")),
    }
    text = json.dumps(summary, separators=(",", ":"))
    while len(text.encode()) > limit and (summary["calls"] or summary["artifacts"]):
        if summary["calls"]:
            summary["calls"].pop()
            summary["droppedCalls"] += 1
        else:
            summary["artifacts"].pop()
        text = json.dumps(summary, separators=(",", ":"))
    return text


def _valid(model: type[_M], items: Sequence[Any]) -> list[_M]:
    """The items that validate; one bad entry costs that entry, not the totals of the whole result."""
    valid = []
    for item in items:
        try:
            valid.append(model.model_validate(item))
        except ValueError:
            continue
    return valid


def parse_result(message: str | None) -> RunResult | None:
    """The runner's result from its termination message; None when absent or unreadable."""
    if not message:
        return None
    try:
        data = json.loads(message)
        usage = data.get("usage", {})
        return RunResult(
            outcome=str(data["outcome"]),
            reason=str(data.get("reason", "")),
            input_tokens=int(usage.get("inputTokens", 0)),
            output_tokens=int(usage.get("outputTokens", 0)),
            cost_micros=int(data.get("costMicros", 0)),
            calls=tuple(_valid(ModelCall, data.get("calls", []))),
            artifacts=tuple(_valid(ArtifactRef, data.get("artifacts", []))),
            spec_digest=data.get("specDigest"),
            reflection=_parse_reflection(data.get("reflection")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# --- the Job --------------------------------------------------------------------------------------


JobState = Literal["missing", "active", "succeeded", "failed"]


@dataclass(frozen=True)
class JobObservation:
    """The runner Job as observed: its state, why it failed, and the runner's result if it left one."""

    state: JobState
    message: str = ""
    result: RunResult | None = None
    preempted: bool = False
    """Kueue evicted the attempt's Job after admitting it (the message starts with PREEMPTED)."""


def _condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in job.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def _termination_message(pods: Sequence[Mapping[str, Any]]) -> str | None:
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses", []) or []:
            terminated = status.get("state", {}).get("terminated")
            if terminated and terminated.get("message"):
                return str(terminated["message"])
    return None


def job_finished(job: Mapping[str, Any]) -> bool:
    """Whether the Job has ended, well or badly (the pods' result is worth reading only then)."""
    return any(
        _condition(job, type_) for type_ in ("Complete", "SuccessCriteriaMet", "Failed", "FailureTarget")
    )


def observe_job(job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]) -> JobObservation:
    """Classify the runner Job from its conditions (Complete / Failed) and read the runner's result."""
    if job is None:
        return JobObservation("missing")
    result = parse_result(_termination_message(pods))
    if _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        return JobObservation("succeeded", "the runner finished", result)
    failed = _condition(job, "Failed") or _condition(job, "FailureTarget")
    if failed:
        reason = failed.get("reason", "Failed")
        return JobObservation("failed", f"{reason}: {failed.get('message', '')}".strip(": "), result)
    return JobObservation("active")


# --- retries and attempts -------------------------------------------------------------------------


def retry_delay(run: AgentRun, failed_attempts: int) -> timedelta | None:
    """How long to wait before the next attempt, or None when the retry policy is spent.

    Exponential: backoffSeconds, then twice that, and so on, capped at one hour.
    """
    policy = run.spec.retry_policy
    if failed_attempts > policy.max_retries:
        return None
    seconds = policy.backoff_seconds * (2 ** max(failed_attempts - 1, 0))
    return timedelta(seconds=min(seconds, 3600))


# How a preempted attempt's message begins (jesus.logic.queueing, docs/scheduling.md).
PREEMPTED = "preempted by Kueue"
# Preemptions a run takes without using up its retries: preemption is the scheduler's choice, not the
# run's failure, and a background run is preempted as a matter of course. Past this many, each further
# preemption counts as a failed attempt, so a run preempted without end still ends.
FREE_PREEMPTIONS = 10


def preemptions(attempts: Sequence[Attempt] | None) -> int:
    """How many of the attempts Kueue preempted."""
    return sum(1 for a in attempts or () if a.outcome == "Failed" and (a.message or "").startswith(PREEMPTED))


def failed_attempts(attempts: Sequence[Attempt] | None) -> int:
    """The failed attempts that count against the retry policy (the first FREE_PREEMPTIONS
    preemptions do not)."""
    failed = sum(1 for a in attempts or () if a.outcome == "Failed")
    return failed - min(preemptions(attempts), FREE_PREEMPTIONS)


# --- totals and traces ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """Usage and cost summed over the calls of every attempt."""

    usage: Usage = field(default_factory=Usage)
    cost_micros: int = 0


def totals(calls: Sequence[ModelCall]) -> Totals:
    """Tokens and cost summed over `calls`."""
    return Totals(
        Usage(
            input_tokens=sum(c.usage.input_tokens for c in calls),
            output_tokens=sum(c.usage.output_tokens for c in calls),
        ),
        sum(c.cost_micros for c in calls),
    )


def metered_cost(attempts: Sequence[Attempt] | None) -> int:
    """What the router metered for the attempts that could not report their calls (preempted, killed):
    part of the run's cost beside its reported calls, never instead of them (an attempt either reported
    its calls or was metered, not both)."""
    return sum(a.metered_cost_micros or 0 for a in attempts or ())


def trace_id(run_uid: str) -> str:
    """The run's trace id (32 hex): derived from its UID, so a rerun reconcile keeps the same trace."""
    return hashlib.sha256(f"trace:{run_uid}".encode()).hexdigest()[:32]


def attempt_span_id(run_uid: str, attempt: int) -> str:
    """The span id (16 hex) of the operator's span that starts `attempt`: the runner's parent."""
    return hashlib.sha256(f"span:{run_uid}:{attempt}".encode()).hexdigest()[:16]


def admission_span_id(run_uid: str) -> str:
    """The span id (16 hex) of the admission that admitted the run: the root of the run's trace."""
    return hashlib.sha256(f"span:{run_uid}:admission".encode()).hexdigest()[:16]


def traceparent(run_uid: str, attempt: int) -> str:
    """A W3C traceparent for the runner of `attempt`, child of the run's trace."""
    return f"00-{trace_id(run_uid)}-{attempt_span_id(run_uid, attempt)}-01"
