"""One AgentRun end to end in this process, from spec files: the embedded default of `jesus run`.

`prepare_local_run` admits the run as the operator does (`jesus.logic.admission`: the route, the
budgets, then the policy; nothing waits here, so a run that would wait is refused) and builds the
router; `execute_local_run` runs the agent loop over it. A run that may not start still gets a
record, with the outcome and reasons that kept it from starting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from jesus.api import (
    AgentRun,
    AgentRunReason,
    Budget,
    Lesson,
    ModelAdapter,
    ReflectionMode,
    RoutePolicy,
    format_micros,
)
from jesus.api.objects import spec_digest
from jesus.logic.admission import AdmissionInputs, AdmissionVerdict, Outcome, PolicyAnswer, admit, decide
from jesus.logic.allowance import Allowance
from jesus.logic.budget import DEFAULT_NAMESPACE
from jesus.logic.clock import format_time, system_clock
from jesus.logic.lessons import LessonPolicy, long_term, offered_to_run
from jesus.logic.reflection import OfferedLesson
from jesus.logic.routing import RoutePlan, RouteUnavailableError, plan_from_route_policy
from jesus.router.config import CredentialSource, RouterConfigError, build_routed_adapters
from jesus.router.core import Router
from jesus.router.ledger import RunLedger
from jesus.runner.artifacts import ArtifactStore
from jesus.runner.loop import AgentTask, execute_run
from jesus.runner.model import InProcessModelClient
from jesus.runner.record import RunOutcome, RunRecord
from jesus.runner.tools import tool_server_specs
from jesus.specs import LoadedObject, SpecSet


class PolicyDecider(Protocol):
    """A policy engine (jesus.policy's embedded engine, in practice)."""

    async def decide(self, policy_input: dict[str, Any]) -> PolicyAnswer:
        """The admission decision for one input document."""
        ...


@dataclass
class PreparedRun:
    """A run ready to execute, or refused; everything the summary shows either way."""

    run: AgentRun
    namespace: str
    record: RunRecord
    task: AgentTask | None = None
    router: Router | None = None
    plan: RoutePlan | None = None
    allowance: Allowance = field(default_factory=Allowance)
    dry_run_adapters: tuple[str, ...] = ()
    max_cost_micros: int = 0

    @property
    def refused(self) -> bool:
        """Whether the run may not start; `record` says why."""
        return self.task is None


def select_run(spec_set: SpecSet, name: str | None) -> LoadedObject:
    """The AgentRun to execute: the one named, or the only one. ValueError explains any ambiguity."""
    runs = spec_set.loaded_of_kind("AgentRun")
    if name is not None:
        chosen = [r for r in runs if r.name == name]
        if not chosen:
            raise ValueError(
                f"no valid AgentRun named {name!r}; found: {', '.join(r.name for r in runs) or 'none'}"
            )
        return chosen[0]
    if len(runs) != 1:
        found = ", ".join(r.name for r in runs) or "none"
        raise ValueError(f"expected exactly one AgentRun, found {len(runs)} ({found}); choose one with --run")
    return runs[0]


async def prepare_local_run(
    spec_set: SpecSet,
    loaded: LoadedObject,
    *,
    live: bool,
    credentials: CredentialSource,
    policy: PolicyDecider | None,
    now: datetime | None = None,
    lessons: Sequence[Lesson] = (),
    lesson_policy: LessonPolicy | None = None,
) -> PreparedRun:
    """Admit the run as the operator would (route, budgets, policy) and build its router.

    The run is offered the lessons that match its team and labels among `lessons` (short-term ones from
    the archive) and the Lessons of the spec set (long-term ones, reviewed in the specs repo), those
    `lesson_policy` lets runs see; the record says which were withheld and why.
    """
    run = loaded.obj
    assert isinstance(run, AgentRun)
    now = now or system_clock()
    namespace = loaded.namespace or DEFAULT_NAMESPACE
    digest = spec_digest(run.to_kubernetes()["spec"])
    record = RunRecord(run=loaded.name, namespace=namespace, spec_digest=digest, dry_run=not live)
    prepared = PreparedRun(run=run, namespace=namespace, record=record)
    if run.spec.depends_on:
        record.warnings.append(
            f"dependsOn ({', '.join(run.spec.depends_on)}) is not awaited locally: jesus run executes this "
            "one AgentRun; in a cluster it starts after they succeed"
        )
    inputs = _admission_inputs(spec_set, loaded, namespace, now)
    verdict = await _admit(inputs, policy)
    _record_admission(record, verdict)
    prepared.max_cost_micros = verdict.amount_micros
    if not verdict.admitted:
        outcome = _REFUSALS.get(verdict.reason, RunOutcome.INVALID_SPEC)
        return _refused(prepared, now, outcome, "; ".join(verdict.reasons))
    assert inputs.route is not None
    refusal = _build_router(prepared, inputs.route, inputs.adapters, live=live, credentials=credentials)
    if refusal is not None:
        return _refused(prepared, now, RunOutcome.INVALID_SPEC, refusal)
    every = [
        *lessons,
        *long_term(o.obj for o in spec_set.loaded_of_kind("Lesson") if isinstance(o.obj, Lesson)),
    ]
    offered, withheld = await offered_to_run(
        every, run.spec.owner.team, run.metadata.labels or {}, lesson_policy
    )
    record.warnings.extend(withheld)
    prepared.task = _agent_task(prepared, loaded.name, digest, offered)
    return prepared


def _refused(prepared: PreparedRun, now: datetime, outcome: RunOutcome, reason: str) -> PreparedRun:
    """`prepared`, refused before it started: its record says why and when."""
    record = prepared.record
    record.outcome = outcome
    record.reason = reason
    record.started_at = record.finished_at = format_time(now)
    return prepared


def _admission_inputs(
    spec_set: SpecSet, loaded: LoadedObject, namespace: str, now: datetime
) -> AdmissionInputs:
    """What admission reads from the specs: the run's RoutePolicy, its namespace's adapters, all Budgets."""
    run = loaded.obj
    assert isinstance(run, AgentRun)
    route_loaded = spec_set.get("RoutePolicy", run.spec.route_policy_ref.name, loaded.namespace)
    route = route_loaded.obj if route_loaded is not None else None
    return AdmissionInputs(
        run=run,
        route=route if isinstance(route, RoutePolicy) else None,
        adapters={
            o.name: o.obj
            for o in spec_set.loaded_of_kind("ModelAdapter")
            if o.namespace == loaded.namespace and isinstance(o.obj, ModelAdapter)
        },
        budgets=[o.obj for o in spec_set.loaded_of_kind("Budget") if isinstance(o.obj, Budget)],
        # jesus run executes this one AgentRun: its dependencies are not awaited (a warning says so).
        dependency_phases=None,
        now=now,
        source="specs",
        default_namespace=namespace,
    )


def _build_router(
    prepared: PreparedRun,
    route: RoutePolicy,
    adapters: Mapping[str, ModelAdapter],
    *,
    live: bool,
    credentials: CredentialSource,
) -> str | None:
    """Give an admitted run its route plan, router and allowance; why not, when the route cannot serve it."""
    run, record = prepared.run, prepared.record
    route_name = run.spec.route_policy_ref.name
    try:
        plan, skipped = plan_from_route_policy(
            route.spec, classification=run.spec.data_classification.value, adapters=adapters
        )
    except RouteUnavailableError as exc:
        return f"RoutePolicy {route_name}: {exc}"
    record.warnings.extend(f"RoutePolicy {route_name}: {why}; left out of the chain" for why in skipped)
    chain = {name: adapters[name] for name in plan.chain}
    try:
        built = build_routed_adapters(chain, live=live, credentials=credentials, namespace=prepared.namespace)
    except RouterConfigError as exc:
        return str(exc)
    prepared.dry_run_adapters = built.dry_run
    prepared.router = Router(built.adapters)
    prepared.plan = plan
    limits = run.spec.limits
    prepared.allowance = Allowance(max_tokens=limits.max_tokens, max_cost_micros=limits.max_cost_micros)
    return None


def _agent_task(
    prepared: PreparedRun, name: str, digest: str, lessons: tuple[OfferedLesson, ...]
) -> AgentTask:
    """The agent loop's task for a run whose router is built."""
    run, record = prepared.run, prepared.record
    tool_servers = tool_server_specs(run)
    assert prepared.plan is not None
    if tool_servers and set(prepared.dry_run_adapters) == set(prepared.plan.chain):
        # Placeholder answers never call a tool, and the servers may exist only in the cluster.
        record.warnings.append(
            "tool servers "
            + ", ".join(server.name for server in tool_servers)
            + " were not started: the dry-run stand-ins call no tools"
        )
        tool_servers = ()
    limits = run.spec.limits
    return AgentTask(
        run=name,
        namespace=prepared.namespace,
        instructions=run.spec.task.instructions,
        inputs=dict(run.spec.task.inputs or {}),
        tool_servers=tool_servers,
        max_turns=limits.max_turns,
        timeout_seconds=float(limits.timeout_seconds),
        spec_digest=digest,
        reflection=run.spec.reflection is ReflectionMode.CHECKLIST,
        offered_lessons=lessons,
        max_tokens=limits.max_tokens,
        max_cost_micros=limits.max_cost_micros,
    )


# Why a local run that admission did not admit does not start (it cannot wait: it runs once, now).
_REFUSALS: dict[str, RunOutcome] = {
    AgentRunReason.BUDGET_EXCEEDED: RunOutcome.BUDGET_EXCEEDED,
    AgentRunReason.POLICY_DENIED: RunOutcome.POLICY_DENIED,
    AgentRunReason.POLICY_UNAVAILABLE: RunOutcome.POLICY_DENIED,
}


async def _admit(inputs: AdmissionInputs, policy: PolicyDecider | None) -> AdmissionVerdict:
    """Admission as the operator decides it (jesus.logic.admission); dependencies are not awaited here."""
    verdict = admit(inputs)
    if verdict.outcome is not Outcome.ASK_POLICY or policy is None:
        return decide(verdict, None)
    assert verdict.policy_input is not None
    return decide(verdict, await policy.decide(verdict.policy_input))


def _record_admission(record: RunRecord, verdict: AdmissionVerdict) -> None:
    """The verdict's budgets, policy answer and warnings in the run's record."""
    if verdict.reason == AgentRunReason.ROUTE_POLICY_NOT_FOUND:
        return  # nothing is priced without a route
    for check in verdict.budgets:
        figures = check.projection.after
        record.budgets.append(
            {
                "name": check.budget.metadata.name,
                "limit": format_micros(figures.limit_micros),
                "reserved": format_micros(check.projection.amount_micros),
                "usedAfter": format_micros(figures.used_micros),
                "remainingAfter": format_micros(figures.remaining_micros),
                "utilizationPercentAfter": figures.utilization_percent,
                "admits": check.projection.admits,
            }
        )
    if not verdict.budgets:
        record.warnings.append("no Budget covers this run")
    answer = verdict.policy
    if answer is not None:
        record.policy = {
            "allowed": answer.allow,
            "reasons": list(answer.reasons),
            "warnings": list(answer.warnings),
            "engine": answer.engine,
        }
        record.warnings.extend(f"policy: {warning}" for warning in answer.warnings)
    else:
        record.warnings.extend(verdict.warnings)


async def execute_local_run(prepared: PreparedRun, *, store: ArtifactStore | None = None) -> RunRecord:
    """Run a prepared run's agent loop in this process; a refused run returns its record untouched."""
    if prepared.task is None or prepared.router is None or prepared.plan is None:
        return prepared.record
    ledger = RunLedger(prepared.task.run, prepared.allowance)
    client = InProcessModelClient(prepared.router, prepared.plan, ledger)
    record = prepared.record
    if prepared.dry_run_adapters:
        record.warnings.insert(
            0,
            "dry run: ModelAdapters "
            + ", ".join(prepared.dry_run_adapters)
            + " were replaced by scripted stand-ins (no provider was called); use --live to call them",
        )
    try:
        return await execute_run(prepared.task, client, store=store, dry_run=record.dry_run, record=record)
    finally:
        for routed in prepared.router.adapters.values():
            await routed.adapter.aclose()
