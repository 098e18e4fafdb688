"""The Kopf wiring of the AgentRun reconcile: which events and timers call it, and for which runs."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

import kopf

from jesus.api.agentrun import AgentRunConditionType as C
from jesus.api.agentrun import AgentRunPhase as Phase
from jesus.api.agentrun import AgentRunReason as R
from jesus.api.common import GROUP, VERSION
from jesus.controllers.agentrun import reconcile
from jesus.controllers.agentrun.holds import settle_orphaned_holds
from jesus.controllers.cache import plain
from jesus.controllers.context import OperatorContext
from jesus.controllers.router_admin import RouterRegistrationError
from jesus.controllers.runner_keys import RunnerKeyError
from jesus.controllers.workqueue import GiveUp, Retry, WorkQueue
from jesus.kube import JsonObject, KubeError
from jesus.kube.reflector import Reflector
from jesus.logic import manifests, queueing, runs

logger = logging.getLogger(__name__)

SLOW_RESYNC_FACTOR = 12
HOLD_SWEEP_SECONDS = 300.0


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """Add the AgentRun handlers to `registry`.

    Every AgentRun event goes to the operator's work queue (`jesus.controllers.workqueue`), not to
    Kopf's change handlers: those would put Kopf's finalizer and its last-handled annotation on every
    run (two writes per run) and a timer task per run. The reconcile is level-based, so a run needs
    no diff; the queue re-looks at waiting and running runs after a delay, as the timers did; a
    deleted run gives back its holds from its DELETED event (and `jesus.controllers.holds_sweep`
    catches a deletion the operator did not see).
    """
    resource = (GROUP, VERSION, "agentruns")
    queue = context.run_queue = WorkQueue(
        partial(_pass, context),
        workers=context.settings.workers,
        owns=lambda key: context.shards.owns(*key),
    )

    tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(id="agentrun-queue", registry=registry)
    async def start_queue(**_: Any) -> None:
        queue.start()
        tasks.append(asyncio.create_task(_sweep_orphaned_holds(context), name="orphaned-holds"))
        if not context.peering:
            for feed in runner_job_feeds(context):
                tasks.append(asyncio.create_task(feed.run(), name=f"runner-jobs:{feed.where}"))

    @kopf.on.cleanup(id="agentrun-queue-stop", registry=registry)
    async def stop_queue(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        await queue.stop()

    @kopf.on.event(*resource, id="agentrun-event", registry=registry)
    async def on_run(*, type: str | None, body: kopf.Body, **_: Any) -> None:
        key = (body.metadata.get("namespace") or "", body.metadata["name"])
        if type == "DELETED":
            queue.forget(key)
            if context.shards.owns(*key):
                await _released(context, key, plain(body))
            return
        obj = plain(body)
        if not context.shards.owns(*key):
            queue.track(key)
        elif _echo(context, key, obj):
            # The status this operator just wrote, coming back: nothing new to decide on.
            queue.track(key)
            queue.schedule(key, next_look(context, reconcile.Reconciled(obj.get("status"))), body=obj)
        else:
            queue.add(key, obj)

    if context.peering:
        _register_kopf_job_events(registry, context)
    if context.settings.queueing is not None:
        _register_workload_events(registry, context)

    @kopf.on.event(GROUP, VERSION, "budgets", id="agentrun-budget-wake", registry=registry)
    async def on_budget(*, type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            return  # runs it covered are re-decided by their safety resync; nothing got cheaper
        await reconcile.wake_for_budget(context, body.metadata.get("namespace") or "", body.metadata["name"])


async def _sweep_orphaned_holds(context: OperatorContext) -> None:
    """Now and then, charge the holds of runs deleted while no operator watched (`holds`)."""
    while True:
        await asyncio.sleep(HOLD_SWEEP_SECONDS)
        try:
            await settle_orphaned_holds(context)
        except KubeError as exc:
            logger.warning("Failed to sweep holds of deleted runs error=%s", exc)


async def _released(context: OperatorContext, key: tuple[str, str], body: JsonObject) -> None:
    """A deleted run: its holds given back, what the operator kept of it dropped."""
    namespace, name = key
    try:
        await reconcile.release_on_delete(context, body)
    except KubeError as exc:
        # The Budget keeps the hold until the sweep of holds whose run is gone gives it back.
        logger.warning("Failed to release holds of deleted run=%s/%s error=%s", namespace, name, exc)
    if context.metrics is not None:
        context.metrics.runs.seen(namespace, name, None)
    context.written_versions.pop(key, None)
    context.locks.pop(("AgentRun", namespace, name), None)
    context.budget_waits.forget(namespace, name)


def _echo(context: OperatorContext, key: tuple[str, str], obj: JsonObject) -> bool:
    """Whether `obj` is exactly the run as this operator's last status write left it."""
    written = context.written_versions.get(key)
    return written is not None and written == str(obj["metadata"].get("resourceVersion", ""))


def next_look(context: OperatorContext, done: reconcile.Reconciled) -> float | None:
    """Seconds until a run should be reconciled again if nothing else happens (what the resync
    timers did): often while it waits for dependencies, a route or the policy engine; rarely while it
    runs (its Job's events drive it), waits for money (its Budget's events wake it) or waits for the
    archive (its writer retries); never once it is finished and recorded."""
    status = done.status
    if status is None:
        return None
    looks: list[float] = [] if done.requeue_after is None else [done.requeue_after]
    fast, slow = context.settings.resync_seconds, context.settings.resync_seconds * SLOW_RESYNC_FACTOR
    if waiting(status) and not waiting_for_budget(status):
        looks.append(fast)
    elif running(status) or waiting_for_budget(status) or (context.archiver and unarchived(status)):
        looks.append(slow)
    return min(looks) if looks else None


async def _pass(context: OperatorContext, key: tuple[str, str], body: JsonObject | None) -> float | None:
    """One reconcile of a queued run; its failures become the queue's retries."""
    try:
        # Through the module, so a benchmark's instrumentation of reconcile_run sees every call.
        done = await reconcile.reconcile_run(context, key[0], key[1], body)
    except KubeError as exc:
        raise Retry(f"API request failed: {exc}", delay=1) from exc
    except RouterRegistrationError as exc:
        raise Retry(str(exc), delay=2) from exc
    except RunnerKeyError as exc:
        raise Retry(str(exc)) from exc
    except kopf.TemporaryError as exc:
        raise Retry(str(exc), delay=exc.delay) from exc
    except kopf.PermanentError as exc:
        raise GiveUp(str(exc)) from exc
    if done.unchanged is not None and context.run_queue is not None:
        context.run_queue.keep(key, done.unchanged)  # the next look needs no read
    return next_look(context, done)


def _queue_job_owner(context: OperatorContext, job: JsonObject) -> None:
    """Queue the run that owns `job` (a runner Job)."""
    namespace = job["metadata"].get("namespace") or ""
    for owner in job["metadata"].get("ownerReferences", []):
        if owner.get("kind") == "AgentRun" and context.run_queue is not None:
            context.run_queue.add((namespace, owner["name"]))


RUNNER_JOBS = {manifests.LABEL_COMPONENT: manifests.COMPONENT_RUNNER}


def runner_job_feeds(context: OperatorContext) -> list[Reflector]:
    """The operator's own watches of runner Jobs, one per watched namespace (or one over all).

    The API server picks the runner Jobs by label, so the operator never receives the cluster's other
    Jobs; Kopf's label filters are applied after the event arrived, over a watch of every Job (and
    Kopf keeps a record of each). Only with Kopf peering do runner Jobs go through Kopf, which pauses
    its watches while the replica stands by.
    """

    async def listed(jobs: list[JsonObject]) -> None:
        for job in jobs:
            on_runner_job(context, "ADDED", job)

    async def changed(type_: str, job: JsonObject) -> None:
        on_runner_job(context, type_, job)

    return [
        Reflector(context.kube, "Job", namespace, listed, changed, labels=RUNNER_JOBS)
        for namespace in (context.namespaces or (None,))
    ]


def on_runner_job(context: OperatorContext, type_: str, job: JsonObject) -> None:
    """Queue the run that owns runner Job `job` when the event can matter to it: the Job finished or
    went away, or (with Kueue) it is queued, where Kueue's every unsuspension or suspension counts."""
    labels = job["metadata"].get("labels") or {}
    queued = context.settings.queueing is not None and queueing.LABEL_QUEUE_NAME in labels
    if type_ == "DELETED" or runs.job_finished(job) or queued:
        _queue_job_owner(context, job)


def _register_kopf_job_events(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """With Kopf peering: runner Jobs' events through Kopf (see `runner_job_feeds`)."""

    @kopf.on.event("batch", "v1", "jobs", id="agentrun-job-event", registry=registry, labels=RUNNER_JOBS)
    async def on_job(*, type: str | None, body: kopf.Body, **_: Any) -> None:
        on_runner_job(context, type or "ADDED", plain(body))


def _register_workload_events(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """With Kueue: a Workload's every change (Kueue's reason, admission, eviction) reconciles the run
    that owns its Job (the queued Job's own changes come through `on_runner_job`)."""

    @kopf.on.event(
        "kueue.x-k8s.io",
        "v1beta2",
        "workloads",
        id="agentrun-workload-event",
        registry=registry,
        labels={queueing.LABEL_JOB_UID: kopf.PRESENT},
    )
    async def on_workload(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            return
        namespace = body.metadata.get("namespace") or ""
        for owner in body.metadata.get("ownerReferences", []):
            if owner.get("kind") != "Job":
                continue
            try:
                job = await context.kube.get("Job", namespace, owner["name"])
            except KubeError:
                continue  # the Job's own events and the resync timer reach the run
            if job is not None and job["metadata"].get("labels", {}).get(manifests.LABEL_COMPONENT) == (
                manifests.COMPONENT_RUNNER
            ):
                _queue_job_owner(context, job)


def _phase(status: Any) -> Phase:
    return Phase(status.get("phase") or Phase.PENDING)


def waiting(status: Any) -> bool:
    """Waiting after a first decision, or finished with a hold still to settle.

    A run with no status yet is left to its create (or resume) handler and Kopf's retries: a timer
    on it would only race that first reconcile for the run's lock.
    """
    unsettled = any(not r.get("settled") for r in status.get("budgetReservations", []))
    return _phase(status) == Phase.WAITING or (_phase(status).terminal and unsettled)


def waiting_for_budget(status: Any) -> bool:
    """Waiting because a covering Budget has no room (its events wake the run)."""
    return _phase(status) == Phase.WAITING and any(
        c.get("type") == C.BUDGET_RESERVED and c.get("reason") == R.BUDGET_EXCEEDED
        for c in status.get("conditions") or []
    )


def unarchived(status: Any) -> bool:
    """Finished and settled, but not yet in the archive (its writer retries; this is the safety net).
    `jesus.logic.records.needs_archiving` on the raw status: a filter runs on every event, unparsed."""
    settled = all(r.get("settled") for r in status.get("budgetReservations", []))
    archived = any(
        c.get("type") == C.ARCHIVED and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return _phase(status).terminal and settled and not archived


def running(status: Any) -> bool:
    """Admitted or running: its Job's events drive it."""
    return _phase(status) in (Phase.ADMITTED, Phase.RUNNING)
