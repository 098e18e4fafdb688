"""Admission in the cluster: observe what `jesus.logic.admission` reads, ask the policy engine when
it says to, have the ledger hold the money of an admitted run, and write the verdict into status."""

from __future__ import annotations

import time
from datetime import datetime

from jesus.api.agentrun import AgentRun, AgentRunPhase
from jesus.api.agentrun import AgentRunConditionType as C
from jesus.api.agentrun import AgentRunPhase as Phase
from jesus.api.agentrun import AgentRunReason as R
from jesus.api.common import ConditionStatus
from jesus.api.objects import spec_digest
from jesus.controllers.agentrun.draft import StatusDraft
from jesus.controllers.agentrun.holds import reserve_all, run_key
from jesus.controllers.context import OperatorContext
from jesus.controllers.metrics import seconds_since
from jesus.kube import JsonObject
from jesus.logic import runs
from jesus.logic.admission import (
    AdmissionInputs,
    AdmissionVerdict,
    Outcome,
    admit,
    decide,
    held_on,
    refused_by_ledger,
)
from jesus.logic.clock import format_time
from jesus.logic.ledger import exclude_run, find_reservation
from jesus.logic.waiting import WaitingRun


async def dependency_phases(context: OperatorContext, run: AgentRun) -> dict[str, AgentRunPhase | None]:
    """The phase of each run `run` depends on (None: it does not exist; Pending: no status yet)."""
    phases: dict[str, AgentRunPhase | None] = {}
    for name in run.spec.depends_on or []:
        found = await context.kube.get("AgentRun", run.metadata.namespace or "", name)
        dep = AgentRun.model_validate(found) if found is not None else None
        phases[name] = None if dep is None else (dep.status.phase if dep.status else None) or Phase.PENDING
    return phases


async def observe(context: OperatorContext, run: AgentRun, now: datetime) -> AdmissionInputs:
    """What admission reads, from the cache (Budgets, the route, adapters) and the dependencies."""
    namespace = run.metadata.namespace or ""
    return AdmissionInputs(
        run=run,
        route=context.cache.route_policies.get(namespace, run.spec.route_policy_ref.name),
        adapters=context.cache.adapters.by_name(namespace),
        # Figures without this run's own hold: a reconcile cut off after reserving must not count it twice.
        budgets=[exclude_run(b, run_key(run)) for b in context.cache.budgets.valid()],
        dependency_phases=await dependency_phases(context, run),
        now=now,
        source="cluster",
        default_namespace=namespace,
    )


async def admit_run(context: OperatorContext, draft: StatusDraft, obj: JsonObject) -> AdmissionVerdict:
    """Decide admission in the documented order, hold the money of an admitted run, and write the
    verdict to `draft`; the verdict says whether the run may start."""
    run = draft.run
    verdict = admit(await observe(context, run, draft.now))
    if verdict.outcome is Outcome.ASK_POLICY:
        assert verdict.policy_input is not None
        started = time.perf_counter()
        decision = await context.policy.decide(verdict.policy_input)
        if context.metrics is not None:
            answer = "allow" if decision.allow else "deny" if decision.decided else "error"
            context.metrics.policy_latency.labels(decision.engine, answer).observe(
                time.perf_counter() - started
            )
        draft.status.policy = decision.to_status(format_time(draft.now))
        verdict = decide(verdict, decision)
    if verdict.admitted:
        held, refusal = await reserve_all(
            context, run, [c.key for c in verdict.budgets], verdict.amount_micros
        )
        draft.status.budget_reservations = held or None
        if refusal is not None:
            verdict = refused_by_ledger(verdict, refusal)
    else:
        await _release_stale_holds(context, run)
    record_verdict(draft, verdict)
    if verdict.reason == R.BUDGET_EXCEEDED and draft.inputs is not None:
        keys = tuple(c.key for c in verdict.budgets)
        context.budget_waits.wait(
            WaitingRun(
                namespace=run.metadata.namespace or "",
                name=run.metadata.name or "",
                created=run.metadata.creation_timestamp or "",
                amount_micros=verdict.amount_micros,
                budgets=keys,
                fingerprint=draft.inputs.fingerprint(keys),
                priority=run.spec.priority,
            )
        )
    if verdict.admitted:
        draft.status.spec_digest = spec_digest(obj["spec"])
        draft.status.trace_id = runs.trace_id(run.metadata.uid or "")
        _observe_latency(context, draft)
    return verdict


async def _release_stale_holds(context: OperatorContext, run: AgentRun) -> None:
    """Give back holds an interrupted reconcile took for a run that is now not admitted."""
    key = run_key(run)
    for budget in context.cache.budgets.valid():
        if find_reservation(budget, key) is not None:
            await context.ledger.release(budget.metadata.namespace or "", budget.metadata.name or "", key)


def record_verdict(draft: StatusDraft, verdict: AdmissionVerdict) -> None:
    """The verdict as the run's conditions and phase."""
    why = "; ".join(verdict.reasons)
    deps = verdict.dependencies
    if verdict.condition == C.DEPENDENCIES_READY:
        draft.condition(C.DEPENDENCIES_READY, False, verdict.reason, why)
    elif deps is not None and deps.ready:
        draft.condition(C.DEPENDENCIES_READY, True, R.DEPENDENCIES_SUCCEEDED, deps.describe())
    if verdict.outcome is Outcome.FAILED:
        draft.phase(Phase.FAILED, verdict.summary)
        draft.status.completion_time = format_time(draft.now)
        return
    if verdict.reason == R.POLICY_UNAVAILABLE:
        error = verdict.policy.error if verdict.policy is not None else None
        draft.condition(C.POLICY_ALLOWED, ConditionStatus.UNKNOWN, R.POLICY_UNAVAILABLE, error or why)
    elif verdict.outcome is Outcome.DENIED:
        draft.condition(C.POLICY_ALLOWED, False, R.POLICY_DENIED, why)
        draft.phase(Phase.DENIED, verdict.summary)
        draft.status.completion_time = format_time(draft.now)
        return
    elif verdict.policy is not None:
        draft.condition(C.POLICY_ALLOWED, True, R.POLICY_ALLOWED, why or "allowed by policy")
    if verdict.condition in (C.ADMITTED, C.BUDGET_RESERVED) and not verdict.admitted:
        draft.condition(verdict.condition, False, verdict.reason, why)
    if not verdict.admitted:
        draft.phase(Phase.WAITING, verdict.summary)
        return
    reason = R.BUDGET_RESERVED if verdict.budgets else R.NO_BUDGET
    draft.condition(C.BUDGET_RESERVED, True, reason, held_on(verdict))
    draft.condition(C.ADMITTED, True, R.ADMITTED, "dependencies, policy and budgets allow the run")
    draft.phase(Phase.ADMITTED, "admitted; creating the runner job")


def _observe_latency(context: OperatorContext, draft: StatusDraft) -> None:
    waited = seconds_since(draft.run.metadata.creation_timestamp, draft.now)
    if context.metrics is not None and waited is not None:
        trace_id = draft.status.trace_id  # the run's trace, as an exemplar
        context.metrics.admission_latency.labels(draft.run.metadata.namespace or "").observe(
            waited, exemplar={"trace_id": trace_id} if trace_id else None
        )
