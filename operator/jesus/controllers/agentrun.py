"""The AgentRun reconciler: dependencies, policy, budgets, the runner Job, settlement.

One level-based reconcile (`reconcile_run`) serves create, update, resume, the resync timer and the
runner Job's events. It re-reads the run, observes what exists, decides with `jesus.logic`, acts
idempotently (deterministic child names, ledger operations keyed by the run's UID) and writes status
only when it changed, with the resourceVersion it read. Killed at any point, it picks up where the
cluster's state says it is: a reservation in the Budget's status means held, a Job means started.

A spec changed after admission does not change the run in flight: the run keeps the spec it was
admitted with (its digest is in status) and reports `SpecChanged`; see docs/operator.md.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import kopf

from jesus.api.agentrun import (
    AgentRun,
    AgentRunStatus,
    Attempt,
    AttemptOutcome,
    BudgetReservation,
)
from jesus.api.agentrun import (
    AgentRunConditionType as C,
)
from jesus.api.agentrun import (
    AgentRunPhase as Phase,
)
from jesus.api.agentrun import (
    AgentRunReason as R,
)
from jesus.api.budget import Budget
from jesus.api.common import GROUP, VERSION, ConditionStatus, format_micros
from jesus.api.objects import spec_digest
from jesus.controllers.cache import plain
from jesus.controllers.context import OperatorContext
from jesus.controllers.router_admin import RouterRegistrationError
from jesus.kube import ChildAction, ConflictError, JsonObject, KubeError, ensure_child
from jesus.logic import manifests, runs
from jesus.logic.budget import covering_budgets, max_run_cost
from jesus.logic.clock import format_time
from jesus.logic.conditions import find_condition, set_condition
from jesus.logic.ledger import RunKey, exclude_run
from jesus.logic.policy_input import build_policy_input
from jesus.logic.waiting import Inputs, WaitingRun

logger = logging.getLogger(__name__)

SPEC_CHANGED = "SpecChanged"


_EVENT_CONDITIONS = frozenset({C.ADMITTED, C.SUCCEEDED, C.FAILED, SPEC_CHANGED})


class _Step:
    """The status being built during one reconcile, with the helpers that keep conditions consistent."""

    def __init__(self, run: AgentRun, now: datetime) -> None:
        self.run = run
        self.now = now
        self.status = (run.status or AgentRunStatus()).model_copy(deep=True)
        self.events: list[tuple[str, str, str]] = []
        self.inputs: Inputs | None = None

    @property
    def generation(self) -> int | None:
        return self.run.metadata.generation

    def condition(self, type_: str, status: bool | ConditionStatus, reason: str, message: str) -> None:
        before = find_condition(self.status.conditions, type_)
        self.status.conditions = set_condition(
            self.status.conditions, type_, status, reason, message, self.generation, self.now
        )
        after = find_condition(self.status.conditions, type_)
        assert after is not None
        if before is not None and (before.status, before.reason) == (after.status, after.reason):
            return
        # Events for decisions a person acts on: refusals and failures, admission, the end. Every
        # other flip is in the conditions; an Event each would double the API writes per run.
        if after.status == ConditionStatus.FALSE and type_ not in (C.READY, C.RUNNING):
            self.events.append(("Warning", reason, message))
        elif after.status == ConditionStatus.TRUE and type_ in _EVENT_CONDITIONS:
            self.events.append(("Normal", reason, message))

    def phase(self, phase: Phase, message: str) -> None:
        self.status.phase = phase
        self.status.message = message[:4096]
        self.condition(C.READY, phase == Phase.SUCCEEDED, phase.value, message)


# --- waiting for money ----------------------------------------------------------------------------


def _inputs(context: OperatorContext, obj: JsonObject) -> Inputs:
    metadata, namespace = obj["metadata"], obj["metadata"].get("namespace") or ""
    route_name = obj.get("spec", {}).get("routePolicyRef", {}).get("name", "")
    return Inputs(
        generation=metadata.get("generation"),
        labels=tuple(sorted((metadata.get("labels") or {}).items())),
        route=context.cache.route_policies.version(namespace, route_name),
        adapters=tuple(sorted((n, rv) for (_, n), rv in context.cache.adapters.versions(namespace).items())),
        budgets=context.cache.budgets.versions(),
    )


def _unchanged_refusal(context: OperatorContext, obj: JsonObject, inputs: Inputs) -> bool:
    """Whether the run was refused for money on the inputs it still has (so deciding is moot)."""
    metadata = obj["metadata"]
    waiting = context.budget_waits.get(metadata.get("namespace") or "", metadata.get("name") or "")
    return waiting is not None and waiting.fingerprint == inputs.fingerprint(waiting.budgets)


# --- observation ----------------------------------------------------------------------------------


async def _dependency_phases(context: OperatorContext, run: AgentRun) -> dict[str, Phase | None]:
    phases: dict[str, Phase | None] = {}
    for name in run.spec.depends_on or []:
        found = await context.kube.get("AgentRun", run.metadata.namespace or "", name)
        dep = AgentRun.model_validate(found) if found is not None else None
        phases[name] = (
            dep.status.phase
            if dep is not None and dep.status is not None
            else (Phase.PENDING if dep is not None else None)
        )
    return phases


# --- admission ------------------------------------------------------------------------------------


async def _admit(context: OperatorContext, step: _Step, obj: JsonObject) -> bool:
    """Dependencies, route, policy and budgets; True when the run may start now."""
    run, namespace = step.run, step.run.metadata.namespace or ""
    deps = runs.dependency_state(run, await _dependency_phases(context, run))
    if deps.failed:
        step.condition(C.DEPENDENCIES_READY, False, R.DEPENDENCY_FAILED, deps.describe())
        step.phase(Phase.FAILED, f"a dependency did not succeed: {deps.describe()}")
        step.status.completion_time = format_time(step.now)
        return False
    if not deps.ready:
        step.condition(C.DEPENDENCIES_READY, False, R.WAITING_FOR_DEPENDENCIES, deps.describe())
        step.phase(Phase.WAITING, f"waiting for dependencies: {deps.describe()}")
        return False
    if run.spec.depends_on:
        step.condition(C.DEPENDENCIES_READY, True, R.DEPENDENCIES_SUCCEEDED, deps.describe())

    route_name = run.spec.route_policy_ref.name
    route = context.cache.route_policies.get(namespace, route_name)
    if route is None:
        step.condition(
            C.ADMITTED, False, R.ROUTE_POLICY_NOT_FOUND, f"RoutePolicy {route_name} does not exist"
        )
        step.phase(Phase.WAITING, f"waiting for RoutePolicy {route_name}")
        return False
    route_ready = find_condition(route.status.conditions if route.status else None, "Ready")
    if route_ready is not None and route_ready.status == ConditionStatus.FALSE:
        step.condition(
            C.ADMITTED, False, route_ready.reason, f"RoutePolicy {route_name}: {route_ready.message}"
        )
        step.phase(
            Phase.WAITING, f"waiting for a ready adapter on RoutePolicy {route_name}: {route_ready.message}"
        )
        return False

    adapters = context.cache.adapters.by_name(namespace)
    # Figures without this run's own hold: a reconcile cut off after reserving must not count it twice.
    budgets = [exclude_run(b, _run_key(run)) for b in context.cache.budgets.valid()]
    # The ledger decides budgets (a run that does not fit waits for money, it is not denied); the
    # policy sees the figures as they were before this run's hold, and a denial gives the hold back.
    chain = [adapters[e.adapter_ref] for e in route.spec.chain if e.adapter_ref in adapters]
    amount = max_run_cost(run.spec.limits, chain).max_micros
    if not await _reserve(context, step, run, budgets, amount):
        return False
    policy_input = build_policy_input(
        run,
        route_policy=route,
        adapters=adapters,
        budgets=budgets,
        now=step.now,
        source="cluster",
        default_namespace=namespace,
    )
    decision = await context.policy.decide(policy_input)
    step.status.policy = decision.to_status(format_time(step.now))
    if not decision.decided or not decision.allow:
        await _release(context, step)
    if not decision.decided:
        step.condition(C.POLICY_ALLOWED, ConditionStatus.UNKNOWN, R.POLICY_UNAVAILABLE, decision.error or "")
        step.phase(Phase.WAITING, f"no policy decision, not admitted (fails closed): {decision.error}")
        return False
    if not decision.allow:
        reasons = "; ".join(decision.reasons) or "denied by policy"
        step.condition(C.POLICY_ALLOWED, False, R.POLICY_DENIED, reasons)
        step.phase(Phase.DENIED, f"denied by policy: {reasons}")
        step.status.completion_time = format_time(step.now)
        return False
    step.condition(
        C.POLICY_ALLOWED, True, R.POLICY_ALLOWED, "; ".join(decision.reasons) or "allowed by policy"
    )
    step.condition(C.ADMITTED, True, R.ADMITTED, "dependencies, policy and budgets allow the run")
    step.status.spec_digest = spec_digest(obj["spec"])
    step.status.trace_id = runs.trace_id(run.metadata.uid or "")
    step.phase(Phase.ADMITTED, "admitted; creating the runner job")
    if context.metrics is not None and run.metadata.creation_timestamp:
        created = datetime.fromisoformat(run.metadata.creation_timestamp.replace("Z", "+00:00"))
        context.metrics.admission_latency.labels(namespace).observe(
            max((step.now - created).total_seconds(), 0.0)
        )
    return True


def _run_key(run: AgentRun) -> RunKey:
    return RunKey(run.metadata.namespace or "", run.metadata.name or "", run.metadata.uid or "")


async def _reserve(
    context: OperatorContext, step: _Step, run: AgentRun, budgets: list[Budget], amount: int
) -> bool:
    covering = sorted(
        covering_budgets(budgets, run, default_namespace=run.metadata.namespace or ""),
        key=lambda b: (b.metadata.namespace or "", b.metadata.name or ""),
    )
    held: list[BudgetReservation] = []
    key = _run_key(run)
    for budget in covering:
        ns, name = budget.metadata.namespace or "", budget.metadata.name or ""
        result = await context.ledger.reserve(ns, name, key, amount)
        if result.newly_fired:
            await _threshold_events(context, ns, name, result.newly_fired, result.figures.utilization_percent)
        if not result.admitted:
            for reservation in held:  # all or nothing: give back what this attempt took
                await context.ledger.release(reservation.namespace, reservation.budget, key)
            step.condition(C.BUDGET_RESERVED, False, R.BUDGET_EXCEEDED, result.message)
            step.phase(Phase.WAITING, f"waiting for budget: {result.message}")
            if step.inputs is not None:
                keys = tuple((b.metadata.namespace or "", b.metadata.name or "") for b in covering)
                context.budget_waits.wait(
                    WaitingRun(
                        namespace=key.namespace,
                        name=key.name,
                        created=run.metadata.creation_timestamp or "",
                        amount_micros=amount,
                        budgets=keys,
                        fingerprint=step.inputs.fingerprint(keys),
                    )
                )
            return False
        held.append(BudgetReservation(namespace=ns, budget=name, amount_micros=amount))
    step.status.budget_reservations = held or None
    if held:
        names = ", ".join(f"{r.namespace}/{r.budget}" for r in held)
        step.condition(
            C.BUDGET_RESERVED, True, R.BUDGET_RESERVED, f"reserved {format_micros(amount)} on {names}"
        )
    else:
        step.condition(C.BUDGET_RESERVED, True, R.NO_BUDGET, "no Budget covers this run")
    return True


async def _release(context: OperatorContext, step: _Step) -> None:
    """Give back every hold of this run (it will not start now)."""
    key = _run_key(step.run)
    for reservation in step.status.budget_reservations or []:
        await context.ledger.release(reservation.namespace, reservation.budget, key)
    step.status.budget_reservations = None


async def _threshold_events(
    context: OperatorContext, namespace: str, name: str, thresholds: tuple[int, ...], utilization: int
) -> None:
    obj = context.cache.budgets.raw(namespace, name)
    if obj is None:
        return
    for threshold in thresholds:
        await context.kube.event(
            obj,
            type_="Warning" if threshold >= 100 else "Normal",
            reason="ThresholdCrossed",
            message=f"Budget {name} reached {threshold}% of its limit ({utilization}% spent or held)",
        )


async def _settle(context: OperatorContext, step: _Step, actual_micros: int) -> None:
    """Spend the run's actual cost on every Budget that holds it and drop the holds (once)."""
    key = _run_key(step.run)
    settled = []
    for reservation in step.status.budget_reservations or []:
        if not reservation.settled:
            result = await context.ledger.settle(
                reservation.namespace, reservation.budget, key, actual_micros
            )
            if result.newly_fired:
                await _threshold_events(
                    context,
                    reservation.namespace,
                    reservation.budget,
                    result.newly_fired,
                    result.figures.utilization_percent,
                )
        settled.append(reservation.model_copy(update={"settled": True}))
    step.status.budget_reservations = settled or None


# --- the runner Job -------------------------------------------------------------------------------


async def _router_token(context: OperatorContext, step: _Step, obj: JsonObject, attempt: int) -> None:
    """Register the attempt with the router and keep its token in a Secret, once per attempt."""
    run = step.run
    namespace = run.metadata.namespace or ""
    token = await context.router.register(run)
    secret = await ensure_child(context.kube, manifests.build_token_secret(run, obj, attempt, token))
    secret.require_ours()  # another owner's Secret of this name would hand the runner a stranger's token
    if secret.action is not ChildAction.CREATED:
        # An earlier, interrupted reconcile made it; its token is as good (grants are signed, so the
        # one registered just now is simply never used).
        logger.debug("Token secret exists run=%s/%s attempt=%d", namespace, run.metadata.name, attempt)


async def _ensure_job(context: OperatorContext, step: _Step, obj: JsonObject, attempt: int) -> str:
    run, settings = step.run, context.settings.runner
    namespace = run.metadata.namespace or ""
    if namespace not in context.runner_accounts:
        await context.kube.create_or_get(manifests.build_runner_service_account(namespace, settings))
        context.runner_accounts.add(namespace)
    await _router_token(context, step, obj, attempt)
    job = manifests.build_runner_job(
        run, obj, attempt, settings, traceparent=runs.traceparent(run.metadata.uid or "", attempt)
    )
    # A Job of this name that another owner controls (say, a deleted run's of the same name, not yet
    # collected) is not this run's to follow: ForeignChildError, and the reconcile is retried.
    child = await ensure_child(context.kube, job)
    child.require_ours()
    if child.action is ChildAction.CREATED:
        logger.info(
            "Created runner job run=%s/%s job=%s attempt=%d",
            namespace,
            run.metadata.name,
            job["metadata"]["name"],
            attempt,
        )
    return str(job["metadata"]["name"])


async def _observe_job(context: OperatorContext, namespace: str, job_name: str) -> runs.JobObservation:
    job = await context.kube.get("Job", namespace, job_name)
    # The pods carry the runner's result; only a finished Job has one worth reading.
    finished = job is not None and runs.job_finished(job)
    pods = await context.kube.list("Pod", namespace, labels={"job-name": job_name}) if finished else []
    return runs.observe_job(job, pods)


def _current_attempt(step: _Step) -> Attempt | None:
    attempts = step.status.attempts or []
    return attempts[-1] if attempts else None


async def _drive(context: OperatorContext, step: _Step, obj: JsonObject) -> None:
    """Create the current attempt's Job, follow it, retry or finish."""
    namespace = step.run.metadata.namespace or ""
    attempt = _current_attempt(step)
    if attempt is None or attempt.outcome == AttemptOutcome.FAILED:
        number = 1 if attempt is None else attempt.number + 1
        if attempt is not None:
            delay = runs.retry_delay(step.run, runs.failed_attempts(step.status.attempts))
            finished = datetime.fromisoformat(
                (attempt.completion_time or format_time(step.now)).replace("Z", "+00:00")
            )
            if delay is not None and step.now < finished + delay:
                step.condition(
                    C.RUNNING,
                    False,
                    R.RETRYING,
                    f"attempt {attempt.number} failed; next in {delay.total_seconds():.0f}s",
                )
                return
        name = await _ensure_job(context, step, obj, number)
        attempt = Attempt(
            number=number, job_name=name, outcome=AttemptOutcome.RUNNING, start_time=format_time(step.now)
        )
        step.status.attempts = [*(step.status.attempts or []), attempt]
        step.status.job_name = name
        step.status.start_time = step.status.start_time or format_time(step.now)
        step.condition(C.RUNNING, True, R.JOB_CREATED, f"runner job {name} created (attempt {number})")
        step.phase(Phase.RUNNING, f"running attempt {number} in job {name}")
        return

    observed = await _observe_job(context, namespace, attempt.job_name)
    if observed.state == "missing":
        # We record an attempt only after its Job exists, so a missing Job was deleted under us.
        observed = runs.JobObservation("failed", f"runner job {attempt.job_name} disappeared")
    if observed.state == "active":
        if await _stopped_by_budget(context, step):
            await context.kube.delete("Job", namespace, attempt.job_name)
            await _finish(
                context,
                step,
                attempt,
                runs.JobObservation("failed", "stopped: a covering budget is exhausted"),
                Phase.FAILED,
                R.STOPPED_BY_BUDGET,
            )
            return
        running = find_condition(step.status.conditions, C.RUNNING)
        if running is None or running.status != ConditionStatus.TRUE:
            # Already True (JobCreated) says as much; flipping the reason would cost a write a run.
            step.condition(C.RUNNING, True, R.JOB_RUNNING, f"runner job {attempt.job_name} is running")
        step.phase(Phase.RUNNING, f"running attempt {attempt.number} in job {attempt.job_name}")
        return
    result = observed.result
    succeeded = observed.state == "succeeded" and (result is None or result.succeeded)
    if succeeded:
        await _finish(context, step, attempt, observed, Phase.SUCCEEDED, R.JOB_SUCCEEDED)
        return
    failures = runs.failed_attempts(step.status.attempts) + 1
    if runs.retry_delay(step.run, failures) is not None:
        _record_attempt(step, attempt, observed, AttemptOutcome.FAILED)
        step.condition(C.RUNNING, False, R.RETRYING, f"attempt {attempt.number} failed: {_why(observed)}")
        step.phase(Phase.RUNNING, f"attempt {attempt.number} failed; retrying per the retry policy")
        return
    reason = R.RETRIES_EXHAUSTED if step.run.spec.retry_policy.max_retries else R.JOB_FAILED
    await _finish(context, step, attempt, observed, Phase.FAILED, reason)


def _why(observed: runs.JobObservation) -> str:
    if observed.result is not None and observed.result.reason:
        return f"{observed.result.outcome}: {observed.result.reason}"
    return observed.message or "the runner failed"


def _record_attempt(
    step: _Step, attempt: Attempt, observed: runs.JobObservation, outcome: AttemptOutcome
) -> None:
    done = attempt.model_copy(
        update={
            "outcome": outcome,
            "completion_time": format_time(step.now),
            "message": _why(observed)[:4096],
        }
    )
    step.status.attempts = [a if a.number != attempt.number else done for a in step.status.attempts or []]
    result = observed.result
    if result is not None:
        calls = [*(step.status.calls or []), *result.calls][:1000]
        step.status.calls = calls or None
        step.status.artifacts = [*(step.status.artifacts or []), *result.artifacts][:100] or None
    totals = runs.totals(step.status.calls or [])
    step.status.usage = totals.usage
    step.status.cost_micros = totals.cost_micros


async def _finish(
    context: OperatorContext,
    step: _Step,
    attempt: Attempt,
    observed: runs.JobObservation,
    phase: Phase,
    reason: str,
) -> None:
    outcome = AttemptOutcome.SUCCEEDED if phase == Phase.SUCCEEDED else AttemptOutcome.FAILED
    _record_attempt(step, attempt, observed, outcome)
    unknown = observed.result is None
    held = max((r.amount_micros for r in step.status.budget_reservations or []), default=0)
    actual = step.status.cost_micros or 0
    if unknown and phase != Phase.SUCCEEDED:
        # No metering reached us for this attempt: charge what was held, never less than what we know.
        actual = max(actual, held)
    await _settle(context, step, actual)
    step.status.cost_micros = actual
    step.status.completion_time = format_time(step.now)
    verb = "succeeded" if phase == Phase.SUCCEEDED else "failed"
    message = f"{verb} after {attempt.number} attempt(s): {_why(observed)}"
    step.condition(C.RUNNING, False, reason, message)
    step.condition(C.SUCCEEDED if phase == Phase.SUCCEEDED else C.FAILED, True, reason, message)
    step.phase(phase, f"{message}; cost {format_micros(actual)}")


async def _stopped_by_budget(context: OperatorContext, step: _Step) -> bool:
    for reservation in step.status.budget_reservations or []:
        budget = context.cache.budgets.get(reservation.namespace, reservation.budget)
        if budget is None:
            continue
        status = budget.status
        if (
            budget.spec.on_exceeded.stop_running_runs
            and status is not None
            and status.spent_micros >= budget.spec.limit_micros
        ):
            return True
    return False


# --- the reconcile --------------------------------------------------------------------------------


async def reconcile_run(
    context: OperatorContext, namespace: str, name: str, body: JsonObject | None = None
) -> None:
    """Bring one AgentRun a step closer to its end, from what the cluster shows now.

    `body` is the run as the triggering watch event showed it, which saves a read; when it is older
    than what this operator last wrote, or the write finds the run changed, the run is read afresh.
    """
    async with context.lock("AgentRun", namespace, name):
        for _ in range(MAX_CONFLICTS):
            obj = body if _current(context, namespace, name, body) else None
            body = None
            if obj is None:
                obj = await context.kube.get("AgentRun", namespace, name)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                context.written_versions.pop((namespace, name), None)
                return
            try:
                await _reconcile_once(context, obj)
            except ConflictError:
                # Decide afresh: a refusal remembered by the attempt whose write failed must not
                # make the next attempt skip the run.
                context.budget_waits.forget(namespace, name)
                continue
            return
        raise kopf.TemporaryError(f"AgentRun {namespace}/{name} kept changing while reconciling", delay=1)


MAX_CONFLICTS = 3


def _current(context: OperatorContext, namespace: str, name: str, body: JsonObject | None) -> bool:
    """Whether `body` is at least as new as the last status this operator wrote for the run."""
    if body is None:
        return False
    written = context.written_versions.get((namespace, name))
    seen = str(body["metadata"].get("resourceVersion", ""))
    if written is None:
        return True
    # resourceVersions are opaque; where both are etcd revisions (digits) an older one is known
    # stale. Otherwise read afresh: the write's precondition would catch a stale one anyway.
    return seen.isdigit() and written.isdigit() and int(seen) >= int(written)


async def _reconcile_once(context: OperatorContext, obj: JsonObject) -> None:
    inputs = _inputs(context, obj)
    if _unchanged_refusal(context, obj, inputs):
        return
    run = AgentRun.model_validate(obj)
    metadata = run.metadata
    context.budget_waits.forget(metadata.namespace or "", metadata.name or "")
    step = _Step(run, context.clock())
    step.inputs = inputs
    phase = step.status.phase
    if phase is not None and phase.terminal:
        if any(not r.settled for r in step.status.budget_reservations or []):
            await _settle(context, step, step.status.cost_micros or 0)
    elif phase in (None, Phase.PENDING, Phase.WAITING):
        if await _admit(context, step, obj):
            await _drive(context, step, obj)
    else:
        if step.status.spec_digest not in (None, spec_digest(obj["spec"])):
            step.condition(
                SPEC_CHANGED,
                True,
                SPEC_CHANGED,
                "the spec changed after admission; this run keeps the spec it was admitted with",
            )
        await _drive(context, step, obj)
    step.status.observed_generation = run.metadata.generation
    await _write(context, obj, step)


async def _write(context: OperatorContext, obj: JsonObject, step: _Step) -> None:
    """PUT the status when it changed (ConflictError when the run moved on), then its Events."""
    before = AgentRunStatus.model_validate(obj.get("status") or {})
    if step.status == before:
        return
    body = {**obj, "status": step.status.model_dump(mode="json", by_alias=True, exclude_none=True)}
    written = await context.kube.replace_status(body)
    metadata = obj["metadata"]
    context.written_versions[(metadata["namespace"], metadata["name"])] = str(
        written.get("metadata", {}).get("resourceVersion", "")
    )
    finished = step.status.phase is not None and step.status.phase.terminal
    if finished and not (before.phase and before.phase.terminal) and context.metrics is not None:
        context.metrics.runs_finished.labels(metadata["namespace"], step.status.phase).inc()
    for type_, reason, message in step.events:
        try:
            await context.kube.event(obj, type_=type_, reason=reason, message=message)
        except KubeError as exc:  # an event is worth a log line, not a failed reconcile
            logger.warning("Failed to record event run=%s reason=%s error=%s", metadata["name"], reason, exc)


async def release_on_delete(context: OperatorContext, body: JsonObject) -> None:
    """A deleted run gives back its holds; a run deleted mid-flight is charged what it held."""
    run = AgentRun.model_validate(body)
    status = run.status or AgentRunStatus()
    key = _run_key(run)
    running = status.phase in (Phase.ADMITTED, Phase.RUNNING)
    for reservation in status.budget_reservations or []:
        if reservation.settled:
            continue
        if running:
            await context.ledger.settle(
                reservation.namespace, reservation.budget, key, reservation.amount_micros
            )
        else:
            await context.ledger.release(reservation.namespace, reservation.budget, key)


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """Add the AgentRun handlers to `registry`."""
    resource = (GROUP, VERSION, "agentruns")

    @kopf.on.resume(*resource, id="agentrun-resume", registry=registry)
    @kopf.on.create(*resource, id="agentrun-create", registry=registry)
    @kopf.on.update(*resource, id="agentrun-update", registry=registry)
    async def on_change(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        await _reconcile_or_retry(context, namespace or "", name, plain(body))

    # Runs waiting for dependencies, a route or the policy engine are re-checked often. Runs waiting
    # for money are woken by their Budget's events (below), so their timer is only a safety net, as
    # is the one of running runs, which their Job's events drive.
    @kopf.timer(
        *resource,
        id="agentrun-resync",
        interval=context.settings.resync_seconds,
        initial_delay=context.settings.resync_seconds,  # create/resume reconcile it first
        registry=registry,
        when=lambda status, **_: _waiting(status) and not _waiting_for_budget(status),
    )
    @kopf.timer(
        *resource,
        id="agentrun-resync-slow",
        interval=context.settings.resync_seconds * SLOW_RESYNC_FACTOR,
        initial_delay=context.settings.resync_seconds * SLOW_RESYNC_FACTOR,
        registry=registry,
        when=lambda status, **_: _running(status) or _waiting_for_budget(status),
    )
    async def on_timer(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        await _reconcile_or_retry(context, namespace or "", name, plain(body))

    @kopf.on.event(
        "batch",
        "v1",
        "jobs",
        id="agentrun-job-event",
        registry=registry,
        labels={manifests.LABEL_COMPONENT: manifests.COMPONENT_RUNNER},
        when=lambda status, **_: runs.job_finished({"status": status}),
    )
    async def on_job(body: kopf.Body, **_: Any) -> None:
        owners = [o for o in body.metadata.get("ownerReferences", []) if o.get("kind") == "AgentRun"]
        for owner in owners:
            await reconcile_run(context, body.metadata["namespace"], owner["name"])

    @kopf.on.event(GROUP, VERSION, "budgets", id="agentrun-budget-wake", registry=registry)
    async def on_budget(*, type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            return  # runs it covered are re-decided by their safety timer; nothing got cheaper
        await wake_for_budget(context, body.metadata.get("namespace") or "", body.metadata["name"])

    @kopf.on.delete(*resource, id="agentrun-release", registry=registry)
    async def on_delete(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        await release_on_delete(context, dict(body))
        context.written_versions.pop((namespace or "", name), None)
        context.locks.pop(("AgentRun", namespace or "", name), None)


SLOW_RESYNC_FACTOR = 12


async def wake_for_budget(context: OperatorContext, namespace: str, name: str) -> None:
    """Re-decide the runs waiting on Budget namespace/name that what it has left could now admit."""
    budget = context.cache.budgets.get(namespace, name)
    if budget is None or budget.status is None:
        return
    for run_namespace, run_name in context.budget_waits.fitting(
        (namespace, name), budget.status.remaining_micros
    ):
        try:
            await reconcile_run(context, run_namespace, run_name)
        except (KubeError, RouterRegistrationError, kopf.TemporaryError) as exc:
            # Its own timer tries again; one failure must not keep the others waiting.
            logger.warning("Failed to wake run=%s/%s error=%s", run_namespace, run_name, exc)


def _phase(status: Any) -> Phase:
    return Phase(status.get("phase") or Phase.PENDING)


def _waiting(status: Any) -> bool:
    """Waiting after a first decision, or finished with a hold still to settle.

    A run with no status yet is left to its create (or resume) handler and Kopf's retries: a timer
    on it would only race that first reconcile for the run's lock.
    """
    unsettled = any(not r.get("settled") for r in status.get("budgetReservations", []))
    return _phase(status) == Phase.WAITING or (_phase(status).terminal and unsettled)


def _waiting_for_budget(status: Any) -> bool:
    """Waiting because a covering Budget has no room (its events wake the run)."""
    return _phase(status) == Phase.WAITING and any(
        c.get("type") == C.BUDGET_RESERVED and c.get("reason") == R.BUDGET_EXCEEDED
        for c in status.get("conditions") or []
    )


def _running(status: Any) -> bool:
    return _phase(status) in (Phase.ADMITTED, Phase.RUNNING)


async def _reconcile_or_retry(
    context: OperatorContext, namespace: str, name: str, body: JsonObject | None = None
) -> None:
    try:
        await reconcile_run(context, namespace, name, body)
    except KubeError as exc:
        raise kopf.TemporaryError(f"API request failed: {exc}", delay=1) from exc
    except RouterRegistrationError as exc:
        raise kopf.TemporaryError(str(exc), delay=2) from exc
