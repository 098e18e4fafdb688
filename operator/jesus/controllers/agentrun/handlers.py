"""The Kopf wiring of the AgentRun reconcile: which events and timers call it, and for which runs."""

from __future__ import annotations

from typing import Any

import kopf

from jesus.api.agentrun import AgentRunConditionType as C
from jesus.api.agentrun import AgentRunPhase as Phase
from jesus.api.agentrun import AgentRunReason as R
from jesus.api.common import GROUP, VERSION
from jesus.controllers.agentrun import reconcile
from jesus.controllers.cache import plain
from jesus.controllers.context import OperatorContext
from jesus.controllers.router_admin import RouterRegistrationError
from jesus.kube import JsonObject, KubeError
from jesus.logic import manifests, queueing, runs

SLOW_RESYNC_FACTOR = 12


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
        when=lambda status, **_: waiting(status) and not waiting_for_budget(status),
    )
    @kopf.timer(
        *resource,
        id="agentrun-resync-slow",
        interval=context.settings.resync_seconds * SLOW_RESYNC_FACTOR,
        initial_delay=context.settings.resync_seconds * SLOW_RESYNC_FACTOR,
        registry=registry,
        when=lambda status, **_: (
            running(status)
            or waiting_for_budget(status)
            or (context.archiver is not None and unarchived(status))
        ),
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
            await reconcile.reconcile_run(context, body.metadata["namespace"], owner["name"])

    if context.settings.queueing is not None:
        _register_queue_events(registry, context)

    @kopf.on.event(GROUP, VERSION, "budgets", id="agentrun-budget-wake", registry=registry)
    async def on_budget(*, type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            return  # runs it covered are re-decided by their safety timer; nothing got cheaper
        await reconcile.wake_for_budget(context, body.metadata.get("namespace") or "", body.metadata["name"])

    @kopf.on.delete(*resource, id="agentrun-release", registry=registry)
    async def on_delete(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        await reconcile.release_on_delete(context, dict(body))
        if context.metrics is not None:
            context.metrics.runs.seen(namespace or "", name, None)
        context.written_versions.pop((namespace or "", name), None)
        context.locks.pop(("AgentRun", namespace or "", name), None)


def _register_queue_events(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """With Kueue: a queued Job's every change (Kueue unsuspends or suspends it) and its Workload's
    (Kueue's reason, admission, eviction) reconcile the run that owns the Job."""

    @kopf.on.event(
        "batch",
        "v1",
        "jobs",
        id="agentrun-queued-job-event",
        registry=registry,
        labels={
            manifests.LABEL_COMPONENT: manifests.COMPONENT_RUNNER,
            queueing.LABEL_QUEUE_NAME: kopf.PRESENT,
        },
        when=lambda status, **_: not runs.job_finished({"status": status}),  # finished: on_job's
    )
    async def on_queued_job(body: kopf.Body, **_: Any) -> None:
        await _reconcile_job_owner(context, dict(body))

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
                await _reconcile_job_owner(context, job)


async def _reconcile_job_owner(context: OperatorContext, job: JsonObject) -> None:
    namespace = job["metadata"].get("namespace") or ""
    for owner in job["metadata"].get("ownerReferences", []):
        if owner.get("kind") == "AgentRun":
            await _reconcile_or_retry(context, namespace, owner["name"])


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


async def _reconcile_or_retry(
    context: OperatorContext, namespace: str, name: str, body: JsonObject | None = None
) -> None:
    try:
        # Through the module, so a benchmark's instrumentation of reconcile_run sees every call.
        await reconcile.reconcile_run(context, namespace, name, body)
    except KubeError as exc:
        raise kopf.TemporaryError(f"API request failed: {exc}", delay=1) from exc
    except RouterRegistrationError as exc:
        raise kopf.TemporaryError(str(exc), delay=2) from exc
