"""The AgentRun reconcile: a thin loop that performs what `jesus.logic` decides.

One level-based reconcile (`reconcile_run`) serves create, update, resume, the resync timers, the
runner Job's events and Budgets that free money. It re-reads the run, asks `lifecycle.next_step`
what to do, performs it (admission, an attempt's Job, settlement) idempotently (deterministic child
names, ledger operations keyed by the run's UID) and writes status only when it changed, with the
resourceVersion it read. Killed at any point, it picks up where the cluster's state says it is: a
reservation in the Budget's status means held, a Job means started.

A spec changed after admission does not change the run in flight: the run keeps the spec it was
admitted with (its digest is in status) and reports `SpecChanged`; see docs/operator.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import kopf

from jesus.api.agentrun import AgentRun, AgentRunPhase, AgentRunStatus, ReflectionMode
from jesus.api.agentrun import AgentRunConditionType as C
from jesus.api.agentrun import AgentRunReason as R
from jesus.api.objects import spec_digest
from jesus.controllers.agentrun import spans
from jesus.controllers.agentrun.admission import admit_run
from jesus.controllers.agentrun.attempts import await_retry, follow_attempt, start_attempt
from jesus.controllers.agentrun.draft import SPEC_CHANGED, StatusDraft
from jesus.controllers.agentrun.holds import release_on_delete as release_holds
from jesus.controllers.agentrun.holds import settle
from jesus.controllers.artifacts import expire_in_status
from jesus.controllers.context import OperatorContext
from jesus.controllers.router_admin import RouterRegistrationError
from jesus.kube import ConflictError, JsonObject, KubeError
from jesus.logic import runs
from jesus.logic.admission import AdmissionVerdict
from jesus.logic.clock import format_time
from jesus.logic.conditions import find_condition
from jesus.logic.lifecycle import Action, NextStep, next_step
from jesus.logic.records import decisions, needs_archiving
from jesus.logic.waiting import Inputs
from jesus.telemetry import log_fields

logger = logging.getLogger(__name__)

MAX_CONFLICTS = 3


@dataclass(frozen=True)
class Reconciled:
    """What a reconcile left: the run's status as stored (None: the run is gone or going), and when
    the run wants another look whatever happens (a retry's backoff), in seconds."""

    status: JsonObject | None
    requeue_after: float | None = None
    unchanged: JsonObject | None = None
    """The run as read, when the reconcile wrote nothing: still current, so a later look can start
    from it instead of reading the run again (a write's own event brings the new object)."""


async def reconcile_run(
    context: OperatorContext, namespace: str, name: str, body: JsonObject | None = None
) -> Reconciled:
    """Bring one AgentRun a step closer to its end, from what the cluster shows now.

    `body` is the run as the triggering watch event showed it, which saves a read; when it is older
    than what this operator last wrote, or the write finds the run changed, the run is read afresh.
    """
    if context.metrics is not None:
        context.metrics.reconciles.labels("AgentRun").inc()
    try:
        return await _reconcile_locked(context, namespace, name, body)
    except Exception as exc:  # counted, then handed on: Kopf retries, the handlers translate
        if context.metrics is not None:
            context.metrics.reconcile_errors.labels("AgentRun", type(exc).__name__).inc()
        raise


async def _reconcile_locked(
    context: OperatorContext, namespace: str, name: str, body: JsonObject | None
) -> Reconciled:
    async with context.lock("AgentRun", namespace, name):
        for _ in range(MAX_CONFLICTS):
            obj = body if _current(context, namespace, name, body) else None
            body = None
            if obj is None:
                obj = await context.kube.get("AgentRun", namespace, name)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                context.written_versions.pop((namespace, name), None)
                if context.metrics is not None:
                    context.metrics.runs.seen(namespace, name, None)
                return Reconciled(None)
            try:
                return await _reconcile_once(context, obj)
            except ConflictError:
                # Decide afresh: a refusal remembered by the attempt whose write failed must not
                # make the next attempt skip the run.
                context.budget_waits.forget(namespace, name)
                continue
        raise kopf.TemporaryError(f"AgentRun {namespace}/{name} kept changing while reconciling", delay=1)


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


async def _reconcile_once(context: OperatorContext, obj: JsonObject) -> Reconciled:
    metadata = obj["metadata"]
    uid = metadata.get("uid")
    with log_fields(
        namespace=metadata.get("namespace"),
        run=metadata.get("name"),
        trace_id=runs.trace_id(uid) if uid else None,
    ):
        return await _reconcile_body(context, obj)


async def _reconcile_body(context: OperatorContext, obj: JsonObject) -> Reconciled:
    metadata = obj["metadata"]
    if context.metrics is not None:
        phase = (obj.get("status") or {}).get("phase") or AgentRunPhase.PENDING.value
        context.metrics.runs.seen(metadata.get("namespace") or "", metadata.get("name") or "", phase)
    inputs = _inputs(context, obj)
    if _unchanged_refusal(context, obj, inputs):
        return Reconciled(obj.get("status"), unchanged=obj)
    run = AgentRun.model_validate(obj)
    context.budget_waits.forget(run.metadata.namespace or "", run.metadata.name or "")
    draft = StatusDraft(run, context.clock(), inputs)
    step = next_step(run, draft.status, draft.now)
    admission: tuple[AdmissionVerdict, int] | None = None
    if step.action is Action.ADMIT:
        started_ns = spans.now_ns()
        verdict = await admit_run(context, draft, obj)
        admission, admitted = (verdict, started_ns), verdict.admitted
        # An admitted run starts its first attempt in the same reconcile.
        step = next_step(run, draft.status, draft.now) if admitted else NextStep(Action.NOTHING)
    elif step.action in (Action.START_ATTEMPT, Action.AWAIT_RETRY, Action.OBSERVE_JOB):
        _note_spec_change(draft, obj)
    await _perform(context, draft, obj, step)
    if step.action is Action.NOTHING:
        await expire_in_status(context.artifacts, draft)
    _archive_condition(context, draft)
    draft.status.observed_generation = run.metadata.generation
    status, wrote = await _write(context, obj, draft)
    if context.archiver is not None and needs_archiving(draft.status):
        context.archiver.offer_run({**obj, "status": status})
    if admission is not None:
        # Only a decision that was written is traced: one that lost to a conflict is decided again.
        spans.record_admission(run, *admission)
    return Reconciled(status, draft.requeue_after, None if wrote else obj)


async def _perform(context: OperatorContext, draft: StatusDraft, obj: JsonObject, step: NextStep) -> None:
    """Do what `next_step` decided."""
    if step.action is Action.START_ATTEMPT:
        await start_attempt(context, draft, obj, step.attempt)
    elif step.action is Action.AWAIT_RETRY:
        assert step.delay is not None
        await_retry(draft, step.attempt - 1, step.delay.total_seconds())
        draft.requeue_after = step.delay.total_seconds()
    elif step.action is Action.OBSERVE_JOB:
        await follow_attempt(context, draft)
    elif step.action is Action.SETTLE:
        await settle(context, draft, draft.status.cost_micros or 0)


def _note_spec_change(draft: StatusDraft, obj: JsonObject) -> None:
    """An admitted run keeps the spec it was admitted with; say so when the spec moved on."""
    if draft.status.spec_digest not in (None, spec_digest(obj["spec"])):
        draft.condition(
            SPEC_CHANGED,
            True,
            SPEC_CHANGED,
            "the spec changed after admission; this run keeps the spec it was admitted with",
        )


def _archive_condition(context: OperatorContext, draft: StatusDraft) -> None:
    """Say whether a finished run's record is in the archive, or why it is not yet."""
    archiver = context.archiver
    if archiver is None or not needs_archiving(draft.status):
        return
    if (draft.run.metadata.uid or "") in archiver.archived:
        draft.condition(C.ARCHIVED, True, R.ARCHIVED, "the run's record is in the archive")
    elif archiver.error is not None:
        draft.condition(
            C.ARCHIVED,
            False,
            R.ARCHIVE_PENDING,
            f"the archive is unavailable; retrying: {archiver.error}"[:1024],
        )


async def _write(context: OperatorContext, obj: JsonObject, draft: StatusDraft) -> tuple[JsonObject, bool]:
    """PUT the status when it changed (ConflictError when the run moved on), then its Events; the
    status as stored, and whether it was written."""
    before = AgentRunStatus.model_validate(obj.get("status") or {})
    # Compared as it will be stored, free text redacted: a message redaction changes is no change.
    status = context.kube.redact_status(
        draft.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    )
    if AgentRunStatus.model_validate(status) == before:
        return status, False
    body = {**obj, "status": status}
    written = await context.kube.replace_status(body)
    metadata = obj["metadata"]
    context.written_versions[(metadata["namespace"], metadata["name"])] = str(
        written.get("metadata", {}).get("resourceVersion", "")
    )
    if context.metrics is not None:
        phase = draft.status.phase or AgentRunPhase.PENDING
        context.metrics.runs.seen(metadata["namespace"], metadata["name"], phase.value)
        if not phase.terminal and draft.run.spec.reflection is ReflectionMode.CHECKLIST:
            context.metrics.expect_reflection(metadata["namespace"], draft.run.spec.owner.team)
        if phase.terminal and not (before.phase and before.phase.terminal):
            context.metrics.finished(
                metadata["namespace"],
                phase.value,
                draft.run.spec.owner,
                draft.status.calls or [],
                find_condition(draft.status.conditions, C.REFLECTED),
            )
    if context.archiver is not None:
        context.archiver.offer_decisions(
            decisions(
                before,
                draft.status,
                namespace=metadata["namespace"],
                name=metadata["name"],
                uid=metadata.get("uid") or "",
                now=format_time(draft.now),
            )
        )
    for type_, reason, message in draft.events:
        try:
            await context.kube.event(obj, type_=type_, reason=reason, message=message)
        except KubeError as exc:  # an event is worth a log line, not a failed reconcile
            logger.warning("Failed to record event run=%s reason=%s error=%s", metadata["name"], reason, exc)
    return status, True


async def release_on_delete(context: OperatorContext, body: JsonObject) -> None:
    """A deleted run gives back its holds; a run deleted mid-flight is charged what it held."""
    await release_holds(context, AgentRun.model_validate(body))


async def request(context: OperatorContext, namespace: str, name: str) -> None:
    """Have run namespace/name reconciled: queued when the operator runs its work queue, else now."""
    if context.run_queue is not None:
        context.run_queue.add((namespace, name))
        return
    try:
        await reconcile_run(context, namespace, name)
    except (KubeError, RouterRegistrationError, kopf.TemporaryError) as exc:
        # Its own resync tries again; one failure must not keep the others waiting.
        logger.warning("Failed to reconcile run=%s/%s error=%s", namespace, name, exc)


async def wake_for_budget(context: OperatorContext, namespace: str, name: str) -> None:
    """Re-decide the runs waiting on Budget namespace/name that what it has left could now admit."""
    budget = context.cache.budgets.get(namespace, name)
    if budget is None or budget.status is None:
        return
    for run_namespace, run_name in context.budget_waits.fitting(
        (namespace, name), budget.status.remaining_micros
    ):
        await request(context, run_namespace, run_name)
