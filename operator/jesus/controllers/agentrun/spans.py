"""The operator's spans of a run: its admission (the root of the run's trace) and each attempt's start.

The ids are derived from the run's UID (`jesus.logic.runs`), so the trace id in the run's status, the
`TRACEPARENT` of its Jobs and these spans agree across reconciles and operator restarts. The admission
that admits the run is the trace's root; an admission that leaves the run waiting or refuses it is a child
of that root (a refused run's trace has no root: nothing else happens in it). Only what the platform
decided goes into attributes: outcomes, reasons' kinds, amounts, names of Budgets.
"""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from jesus.api.agentrun import AgentRun
from jesus.logic import runs
from jesus.logic.admission import AdmissionVerdict, Outcome
from jesus.telemetry import start_pinned_span
from jesus.telemetry.tracing import remote_parent

tracer = trace.get_tracer("jesus.operator")


def record_admission(run: AgentRun, verdict: AdmissionVerdict, started_ns: int) -> None:
    """The span of one admission decision, from `started_ns` (time.time_ns) to now, with its events."""
    uid = run.metadata.uid or ""
    if not uid:  # no UID, no trace id to put it in
        return
    trace_id, root = runs.trace_id(uid), runs.admission_span_id(uid)
    attributes: dict[str, str | int | bool] = {
        "jesus.run": run.metadata.name or "",
        "jesus.namespace": run.metadata.namespace or "",
        "jesus.admission.outcome": verdict.outcome.value,
        "jesus.admission.reason": verdict.reason,
    }
    if verdict.outcome is Outcome.ADMITTED:
        span = start_pinned_span(
            tracer, "admit", trace_id=trace_id, span_id=root, attributes=attributes, start_time=started_ns
        )
    else:
        span = tracer.start_span(
            "admit", context=remote_parent(trace_id, root), attributes=attributes, start_time=started_ns
        )
    if verdict.policy is not None:
        span.add_event(
            "policy decision",
            {
                "jesus.policy.allowed": verdict.policy.allow,
                "jesus.policy.engine": verdict.policy.engine,
                "jesus.policy.reasons": len(verdict.policy.reasons),
            },
        )
    if verdict.admitted:
        for check in verdict.budgets:
            namespace, name = check.key
            span.add_event(
                "budget hold",
                {
                    "jesus.budget": f"{namespace}/{name}",
                    "jesus.budget.amount_micros": verdict.amount_micros,
                },
            )
    if verdict.outcome in (Outcome.DENIED, Outcome.FAILED):
        span.set_status(Status(StatusCode.ERROR, verdict.reason))
    span.end()


def record_attempt_start(run: AgentRun, attempt: int, job: str, started_ns: int) -> None:
    """The span that created attempt `attempt`'s Job; its id is the one the Job's TRACEPARENT names."""
    uid = run.metadata.uid or ""
    if not uid:
        return
    span = start_pinned_span(
        tracer,
        "start attempt",
        trace_id=runs.trace_id(uid),
        span_id=runs.attempt_span_id(uid, attempt),
        parent_span_id=runs.admission_span_id(uid),
        attributes={
            "jesus.run": run.metadata.name or "",
            "jesus.namespace": run.metadata.namespace or "",
            "jesus.attempt": attempt,
            "jesus.job": job,
        },
        start_time=started_ns,
    )
    span.end()


def now_ns() -> int:
    """The wall clock in nanoseconds, as span times are written."""
    return time.time_ns()
