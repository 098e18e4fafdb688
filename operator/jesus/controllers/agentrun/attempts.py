"""The runner Job of each attempt: create it, follow it, and write what `jesus.logic.lifecycle`
makes of it (running, stopped by a Budget, succeeded, retry, failed) into the run's status.

With Kueue (`OperatorSettings.queueing`), the Job is created suspended in the team's LocalQueue and
lane; while Kueue has not admitted it the run says so (`Queued`, Kueue's reason); an attempt Kueue
preempts ends as a failed attempt ("preempted") and the run's retry policy decides what follows."""

from __future__ import annotations

import dataclasses
import logging

from jesus.api.agentrun import AgentRun, Attempt, AttemptOutcome
from jesus.api.agentrun import AgentRunConditionType as C
from jesus.api.agentrun import AgentRunPhase as Phase
from jesus.api.agentrun import AgentRunReason as R
from jesus.api.common import format_micros
from jesus.api.registration import MeteredSpend
from jesus.controllers import artifacts
from jesus.controllers.agentrun import spans
from jesus.controllers.agentrun.draft import StatusDraft
from jesus.controllers.agentrun.holds import settle
from jesus.controllers.context import OperatorContext
from jesus.controllers.metrics import seconds_since
from jesus.kube import ChildAction, JsonObject, KubeError, ensure_child
from jesus.logic import egress, manifests, queueing, runs, sealing
from jesus.logic.clock import format_time
from jesus.logic.conditions import is_true
from jesus.logic.lessons import long_term, offered_to_run
from jesus.logic.lifecycle import JobAction, attempt_failure, budget_stops_run, charge, job_step
from jesus.logic.reflection import OfferedLesson

logger = logging.getLogger(__name__)


async def start_attempt(context: OperatorContext, draft: StatusDraft, obj: JsonObject, number: int) -> None:
    """Create the Job of attempt `number` (and what it needs) and record the attempt."""
    try:
        queue_labels = _queue_labels(context, draft)
    except queueing.QueueingError as exc:
        # No Job: the run waits (the next reconcile tries again) and says why; nothing is lost.
        draft.condition(C.QUEUED, True, R.INVALID_QUEUE, str(exc))
        draft.condition(C.RUNNING, False, R.INVALID_QUEUE, str(exc))
        return
    name = await _ensure_job(context, draft, obj, number, queue_labels)
    now = format_time(draft.now)
    attempt = Attempt(number=number, job_name=name, outcome=AttemptOutcome.RUNNING, start_time=now)
    draft.status.attempts = [*(draft.status.attempts or []), attempt]
    draft.status.job_name = name
    if draft.status.start_time is None:
        draft.status.start_time = now
        _observe_queue_wait(context, draft)
    if queue_labels:
        queue, lane = queue_labels[queueing.LABEL_QUEUE_NAME], queue_labels[queueing.LABEL_PRIORITY_CLASS]
        message = f"runner job {name} (attempt {number}) waits in Kueue: LocalQueue {queue}, lane {lane}"
        draft.condition(C.QUEUED, True, queueing.NO_WORKLOAD, message)
        draft.condition(C.RUNNING, False, R.QUEUED_IN_KUEUE, message)
        draft.phase(Phase.RUNNING, message)
        return
    draft.condition(C.RUNNING, True, R.JOB_CREATED, f"runner job {name} created (attempt {number})")
    draft.phase(Phase.RUNNING, f"running attempt {number} in job {name}")


def _queue_labels(context: OperatorContext, draft: StatusDraft) -> dict[str, str] | None:
    """Kueue's labels for the run's Job, or None without Kueue; QueueingError when the naming rule
    makes no valid LocalQueue name for the run's team."""
    settings = context.settings.queueing
    if settings is None:
        return None
    run = draft.run
    return queueing.job_labels(
        settings, team=run.spec.owner.team, namespace=run.metadata.namespace or "", priority=run.spec.priority
    )


def await_retry(draft: StatusDraft, failed: int, delay_seconds: float) -> None:
    """The last attempt failed and its backoff has not passed."""
    draft.condition(C.RUNNING, False, R.RETRYING, f"attempt {failed} failed; next in {delay_seconds:.0f}s")


def _observe_queue_wait(context: OperatorContext, draft: StatusDraft) -> None:
    """The run's first Job: how long it waited since it was created (admission, money, dependencies)."""
    waited = seconds_since(draft.run.metadata.creation_timestamp, draft.now)
    if context.metrics is not None and waited is not None:
        context.metrics.queue_wait.labels(draft.run.metadata.namespace or "").observe(waited)


async def _lessons_offered(context: OperatorContext, run: AgentRun) -> tuple[OfferedLesson, ...]:
    """The lessons the run is offered: the LongTerm Lessons of its namespace (synced from the specs
    repo) and the archive's ShortTerm ones of its team, those that match its team and labels and that
    the policy lets runs see (policies/lessons/)."""
    namespace, team, labels = run.metadata.namespace or "", run.spec.owner.team, run.metadata.labels or {}
    short_term = await context.memory.lessons_for(team) if context.memory is not None else []
    known = [*long_term(context.cache.lessons.valid(namespace)), *short_term]
    offered, withheld = await offered_to_run(known, team, labels, context.lesson_policy)
    if withheld:
        reasons = "; ".join(withheld)
        logger.info("Withheld lessons run=%s/%s reasons=%s", namespace, run.metadata.name, reasons)
    return offered


async def _sealed_token(context: OperatorContext, draft: StatusDraft) -> str:
    """Register the attempt with the router; its token sealed with the namespace's runner key, for
    the Job's pod spec (no Secret per attempt: `jesus.logic.sealing`)."""
    run = draft.run
    token = await context.router.register(run)
    key = await context.runner_keys.key(run.metadata.namespace or "")
    return sealing.seal(key, token, int(draft.now.timestamp()))


async def _ensure_job(
    context: OperatorContext,
    draft: StatusDraft,
    obj: JsonObject,
    attempt: int,
    queue_labels: dict[str, str] | None,
) -> str:
    run, settings = draft.run, context.settings.runner
    namespace = run.metadata.namespace or ""
    started_ns = spans.now_ns()
    if namespace not in context.runner_accounts:
        account = manifests.build_runner_service_account(namespace, settings)
        # The first runs of a namespace arrive together: one of them makes the account, the others wait.
        async with context.lock("ServiceAccount", namespace, account["metadata"]["name"]):
            if namespace not in context.runner_accounts:
                await context.kube.create_or_get(account)
                context.runner_accounts.add(namespace)
    sealed_token = await _sealed_token(context, draft)
    # Before the Job: a pod no NetworkPolicy selects may reach anything.
    await _ensure_network_policy(context, draft, obj)
    lessons = await _lessons_offered(context, run)
    job = manifests.build_runner_job(
        run,
        obj,
        attempt,
        settings,
        traceparent=runs.traceparent(run.metadata.uid or "", attempt),
        sealed_token=sealed_token,
        lessons=lessons,
        queue_labels=queue_labels,
        artifact_grant=artifacts.attempt_grant(context.artifacts, run, attempt),
    )
    # A Job of this name that another owner controls (say, a deleted run's of the same name, not yet
    # collected) is not this run's to follow: ForeignChildError, and the reconcile is retried.
    child = await ensure_child(context.kube, job)
    child.require_ours()
    if child.action is ChildAction.CREATED:
        spans.record_attempt_start(run, attempt, str(job["metadata"]["name"]), started_ns)
        logger.info(
            "Created runner job run=%s/%s job=%s attempt=%d",
            namespace,
            run.metadata.name,
            job["metadata"]["name"],
            attempt,
        )
    return str(job["metadata"]["name"])


async def _ensure_network_policy(context: OperatorContext, draft: StatusDraft, obj: JsonObject) -> None:
    """Create or update the run's NetworkPolicy for this attempt's spec; warn about tool servers it
    cannot allow."""
    settings = context.settings.runner_egress
    if settings is None:
        return
    run = draft.run
    targets = egress.tool_targets(run, settings.cluster_domain)
    services: dict[tuple[str, str], JsonObject | None] = {}
    for target in targets:
        if isinstance(target, egress.ServiceTarget) and target.key not in services:
            services[target.key] = await _read_service(context, *target.key)
    rules, refused = egress.tool_rules(targets, services)
    policy = egress.build_runner_network_policy(run, obj, settings, rules)
    child = await ensure_child(context.kube, policy, update=egress.policy_update)
    child.require_ours()  # another owner's policy of this name says nothing about this run's pods
    if child.action is not ChildAction.UNCHANGED:
        logger.info(
            "Wrote runner network policy run=%s/%s policy=%s toolRules=%d notAllowed=%d",
            run.metadata.namespace,
            run.metadata.name,
            policy["metadata"]["name"],
            len(rules),
            len(refused),
        )
    for miss in refused:
        draft.events.append(("Warning", egress.TOOL_SERVER_NOT_ALLOWED, miss.reason))


async def _read_service(context: OperatorContext, namespace: str, name: str) -> JsonObject | None:
    """The Service a tool URL names; None when it is missing or the operator may not read it there."""
    try:
        return await context.kube.get("Service", namespace, name)
    except KubeError as exc:
        logger.warning("Failed to read tool service service=%s/%s error=%s", namespace, name, exc)
        return None


async def _observe_job(
    context: OperatorContext, namespace: str, job_name: str
) -> tuple[JsonObject | None, runs.JobObservation]:
    job = await context.kube.get("Job", namespace, job_name)
    # The pods carry the runner's result; only a finished Job has one worth reading.
    finished = job is not None and runs.job_finished(job)
    pods = await context.kube.list("Pod", namespace, labels={"job-name": job_name}) if finished else []
    return job, runs.observe_job(job, pods)


async def _follow_queue(
    context: OperatorContext, draft: StatusDraft, attempt: Attempt, job: JsonObject
) -> queueing.QueueObservation:
    """Read the Job's Workload and write what Kueue says: still queued (Queued=True with Kueue's
    reason), admitted (Queued=False), or preempted (the caller ends the attempt)."""
    uid = str(job["metadata"].get("uid") or "")
    workloads = await context.kube.list(
        "Workload", job["metadata"]["namespace"], labels={queueing.LABEL_JOB_UID: uid}
    )
    seen = queueing.observe_workload(job, workloads)
    if seen.state is queueing.QueueState.QUEUED:
        message = f"runner job {attempt.job_name} (attempt {attempt.number}) waits in Kueue: {seen.message}"
        draft.condition(C.QUEUED, True, seen.reason, message[:1024])
        draft.condition(C.RUNNING, False, R.QUEUED_IN_KUEUE, message[:1024])
        draft.phase(Phase.RUNNING, f"queued in Kueue ({seen.reason}): {seen.message}")
    elif seen.state is queueing.QueueState.ADMITTED:
        draft.condition(C.QUEUED, False, R.ADMITTED, seen.message)
    else:
        draft.condition(C.QUEUED, False, seen.reason, f"attempt {attempt.number} preempted: {seen.message}")
    return seen


async def follow_attempt(context: OperatorContext, draft: StatusDraft) -> None:
    """Observe the current attempt's Job and perform what `job_step` makes of it."""
    namespace = draft.run.metadata.namespace or ""
    attempt = (draft.status.attempts or [])[-1]
    job, observed = await _observe_job(context, namespace, attempt.job_name)
    preempted = False
    if context.settings.queueing is not None and job is not None and observed.state == "active":
        seen = await _follow_queue(context, draft, attempt, job)
        if seen.state is queueing.QueueState.QUEUED:
            return
        if seen.state is queueing.QueueState.PREEMPTED:
            # Kueue suspended the Job and its pod is gone: this attempt is over.
            preempted = True
            observed = runs.JobObservation(
                "failed", f"{runs.PREEMPTED} ({seen.reason}): {seen.message}", preempted=True
            )
            logger.info(
                "Preempted runner job run=%s/%s job=%s attempt=%d reason=%s",
                namespace,
                draft.run.metadata.name,
                attempt.job_name,
                attempt.number,
                seen.reason,
            )
    budgets = {
        (r.namespace, r.budget): b
        for r in draft.status.budget_reservations or []
        if (b := context.cache.budgets.get(r.namespace, r.budget)) is not None
    }
    step = job_step(
        draft.run,
        draft.status.attempts,
        observed,
        budget_stops_run(draft.status.budget_reservations, budgets),
    )
    if step.action is JobAction.RUNNING:
        # Already True (JobCreated) says as much; flipping the reason would cost a write a run.
        if not is_true(draft.status.conditions, C.RUNNING):
            draft.condition(C.RUNNING, True, R.JOB_RUNNING, f"runner job {attempt.job_name} is running")
        draft.phase(Phase.RUNNING, f"running attempt {attempt.number} in job {attempt.job_name}")
        return
    # The attempt is over. A pod can list what it never stored: only entries the bucket bears out
    # reach the status.
    checked = await artifacts.verify_attempt(context.artifacts, draft, attempt.number, step.observed)
    step = dataclasses.replace(step, observed=checked)
    # An attempt that ends without its calls in a runner result is metered by the router, before its Job
    # goes (a failure here leaves everything as it was, and the reconcile is retried).
    lost = step.observed.result is None
    metered = await _meter_lost_attempt(context, draft, attempt, job) if lost else None
    if preempted or step.action is JobAction.STOP_FOR_BUDGET:
        # Deleting a preempted Job drops its Workload, so Kueue cannot resume it behind the next
        # attempt's back.
        await context.kube.delete("Job", namespace, attempt.job_name)
    if step.action is JobAction.RETRY:
        _record_attempt(draft, attempt, step.observed, AttemptOutcome.FAILED, metered)
        why = attempt_failure(step.observed)
        draft.condition(C.RUNNING, False, R.RETRYING, f"attempt {attempt.number} failed: {why}")
        draft.phase(Phase.RUNNING, f"attempt {attempt.number} failed; retrying per the retry policy")
        return
    phase = Phase.SUCCEEDED if step.action is JobAction.SUCCEED else Phase.FAILED
    await _finish(context, draft, attempt, step.observed, phase, step.reason, metered)


async def _meter_lost_attempt(
    context: OperatorContext, draft: StatusDraft, attempt: Attempt, job: JsonObject | None
) -> MeteredSpend | None:
    """Revoke the attempt's router token and answer what the router metered for it: the attempt's pod
    did not report its calls. None when the router cannot say (or the Job with the token is gone)."""
    run = draft.run
    namespace, name = run.metadata.namespace or "", run.metadata.name or ""
    token = await _attempt_token(context, namespace, name, attempt, job)
    metered = await context.router.revoke(token) if token else None
    logger.info(
        "Metered unreported attempt run=%s/%s attempt=%d costMicros=%s",
        namespace,
        name,
        attempt.number,
        "unknown" if metered is None else metered.charge_micros,
    )
    return metered


async def _attempt_token(
    context: OperatorContext, namespace: str, name: str, attempt: Attempt, job: JsonObject | None
) -> str | None:
    """The attempt's router token: opened from its Job's pod spec, or read from the Secret of a Job
    made before tokens were sealed; None when neither is there any more."""
    sealed = sealing.sealed_token_of(job) if job is not None else None
    if sealed is not None:
        try:
            return sealing.unseal(await context.runner_keys.key(namespace), sealed)
        except sealing.SealError as exc:
            logger.warning(
                "Failed to open the token run=%s/%s attempt=%d error=%s", namespace, name, attempt.number, exc
            )
            return None
    secret = await context.kube.get("Secret", namespace, manifests.token_secret_name(name, attempt.number))
    return manifests.secret_token(secret) if secret is not None else None


def _record_attempt(
    draft: StatusDraft,
    attempt: Attempt,
    observed: runs.JobObservation,
    outcome: AttemptOutcome,
    metered: MeteredSpend | None = None,
) -> None:
    update: dict[str, object] = {
        "outcome": outcome,
        "completion_time": format_time(draft.now),
        "message": attempt_failure(observed)[:4096],
    }
    if metered is not None:
        update |= {"metered_cost_micros": metered.charge_micros, "metered_tokens": metered.charge_tokens}
    done = attempt.model_copy(update=update)
    status = draft.status
    status.attempts = [a if a.number != attempt.number else done for a in status.attempts or []]
    result = observed.result
    if result is not None:
        status.calls = [*(status.calls or []), *result.calls][:1000] or None
        status.artifacts = [*(status.artifacts or []), *result.artifacts][:100] or None
    totals = runs.totals(status.calls or [])
    status.usage = totals.usage
    status.cost_micros = totals.cost_micros + runs.metered_cost(status.attempts)


async def _finish(
    context: OperatorContext,
    draft: StatusDraft,
    attempt: Attempt,
    observed: runs.JobObservation,
    phase: Phase,
    reason: str,
    metered: MeteredSpend | None = None,
) -> None:
    succeeded = phase == Phase.SUCCEEDED
    outcome = AttemptOutcome.SUCCEEDED if succeeded else AttemptOutcome.FAILED
    _record_attempt(draft, attempt, observed, outcome, metered)
    actual = charge(draft.status, observed, succeeded)
    await settle(context, draft, actual)
    draft.status.cost_micros = actual
    draft.status.completion_time = format_time(draft.now)
    await artifacts.mark_retention(context.artifacts, draft)
    verb = "succeeded" if succeeded else "failed"
    message = f"{verb} after {attempt.number} attempt(s): {attempt_failure(observed)}"
    draft.condition(C.RUNNING, False, reason, message)
    draft.condition(C.SUCCEEDED if succeeded else C.FAILED, True, reason, message)
    reflection = observed.result.reflection if observed.result is not None else None
    if reflection is not None:
        draft.condition(
            C.REFLECTED,
            reflection.passed,
            R.CHECKLIST_PASSED if reflection.passed else R.CHECKLIST_FAILED,
            reflection.describe(),
        )
    draft.phase(phase, f"{message}; cost {format_micros(actual)}")
