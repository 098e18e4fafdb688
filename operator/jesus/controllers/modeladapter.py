"""The ModelAdapter reconciler: credentials, and for a serving block the vLLM Deployment and Service.

One level-based reconcile (`reconcile_adapter`) serves create, update, resume, the resync timer and
the serving Deployment's events. It reads the adapter, makes the Deployment and Service match what
`jesus.logic.serving` builds (create; or adopt and patch when the live one differs), observes the
Deployment and its pods, and writes the status `jesus.logic.routes` computes, only when it changed.
The children carry an ownerReference, so deleting the adapter garbage-collects them: no finalizer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from jesus.api.common import LABEL_MANAGED_BY, ConditionStatus
from jesus.api.modeladapter import ModelAdapter, ModelAdapterConditionType, ModelAdapterStatus
from jesus.api.objects import Ownership, ownership
from jesus.controllers.context import OperatorContext
from jesus.controllers.level import register_level_handlers
from jesus.controllers.retry import reconcile_live
from jesus.kube import ChildAction, JsonObject, KubeError, ensure_child
from jesus.logic import queueing
from jesus.logic import serving as serving_logic
from jesus.logic.conditions import find_condition
from jesus.logic.routes import ServingObservation, model_adapter_status

logger = logging.getLogger(__name__)

Events = list[tuple[str, str, str]]


def _serving_update(live: Mapping[str, Any], desired: Mapping[str, Any]) -> JsonObject | None:
    return serving_logic.update_patch(desired) if serving_logic.needs_update(live, desired) else None


async def _ensure_child(
    context: OperatorContext, adapter: ModelAdapter, desired: JsonObject, events: Events
) -> tuple[JsonObject, bool]:
    """The live child after making it match `desired`; the flag is False when another object owns it."""
    kind, namespace, name = desired["kind"], desired["metadata"]["namespace"], desired["metadata"]["name"]
    child = await ensure_child(context.kube, desired, update=_serving_update)
    if child.action is ChildAction.CREATED:
        logger.info(
            "Created inference %s name=%s namespace=%s adapter=%s",
            kind,
            name,
            namespace,
            adapter.metadata.name,
        )
    elif child.action in (ChildAction.ADOPTED, ChildAction.UPDATED):
        logger.info("%s inference %s name=%s namespace=%s", child.action, kind, name, namespace)
    if child.action in (ChildAction.CREATED, ChildAction.ADOPTED, ChildAction.UPDATED):
        events.append(("Normal", f"{child.action}{kind}", f"{child.action} {kind} {name}"))
    return child.live, child.ours


async def _serve(context: OperatorContext, adapter: ModelAdapter, events: Events) -> ServingObservation:
    """Create or update the Deployment and Service, then observe the Deployment and its pods (and with
    Kueue, the Workloads of the pods it holds back)."""
    now = context.clock()
    settings = context.settings.queueing
    queue_labels = None
    if settings is not None:
        namespace = adapter.metadata.namespace or ""
        team = queueing.serving_team(adapter.metadata.labels, namespace)
        try:
            queue_labels = queueing.serving_labels(settings, team=team, namespace=namespace)
        except queueing.QueueingError as exc:
            # No Deployment outside the queue: it would take GPUs past every quota.
            return serving_logic.serving_unqueued(adapter, str(exc), now=now)
    deployment, ours = await _ensure_child(
        context,
        adapter,
        serving_logic.build_inference_deployment(adapter, context.settings.serving_placement, queue_labels),
        events,
    )
    if not ours:
        return serving_logic.serving_conflict(adapter, deployment, now=now)
    service, ours = await _ensure_child(
        context, adapter, serving_logic.build_inference_service(adapter), events
    )
    if not ours:
        return serving_logic.serving_conflict(adapter, service, now=now)
    pods = await context.kube.list(
        "Pod", adapter.metadata.namespace, labels=serving_logic.selector_labels(adapter)
    )
    queued = None
    if settings is not None and any(queueing.gated(pod) for pod in pods):
        workloads = await context.kube.list("Workload", adapter.metadata.namespace)
        seen = queueing.observe_gated_pods(pods, workloads)
        queued = None if seen is None else f"{seen.reason}: {seen.message}"
    return serving_logic.serving_status(adapter, deployment, pods, now=now, queued=queued)


async def _retire_serving(context: OperatorContext, adapter: ModelAdapter, events: Events) -> None:
    """Delete the Deployments and Services the adapter no longer wants (ours only): all of them when its
    serving block was removed, the old engine's when it switched engines."""
    namespace = adapter.metadata.namespace or ""
    why = "the adapter no longer serves" if adapter.spec.serving is None else "the adapter switched engines"
    for name in serving_logic.retired_children(adapter):
        for kind in ("Deployment", "Service"):
            live = await context.kube.get(kind, namespace, name)
            if live is None or ownership(live, adapter.metadata.uid) is not Ownership.OURS:
                continue
            if await context.kube.delete(kind, namespace, name):
                logger.info("Deleted inference %s name=%s namespace=%s", kind, name, namespace)
                events.append(("Normal", f"Deleted{kind}", f"Deleted {kind} {name}: {why}"))


async def reconcile_adapter(context: OperatorContext, namespace: str, name: str) -> None:
    """Bring one ModelAdapter's children and status up to date with what the cluster shows now."""
    await reconcile_live(
        context, ModelAdapter, namespace, name, lambda obj, adapter: _decide(context, obj, adapter)
    )


async def _decide(context: OperatorContext, obj: JsonObject, adapter: ModelAdapter) -> None:
    namespace = obj["metadata"]["namespace"]
    events: Events = []
    ref = adapter.spec.credentials_secret_ref
    secret = await context.kube.get("Secret", namespace, ref.name) if ref is not None else None
    observation = None
    served = adapter.status.serving if adapter.status is not None else None
    if adapter.spec.serving is not None:
        observation = await _serve(context, adapter, events)
        if served is not None and served.deployment_name != observation[1].deployment_name:
            await _retire_serving(context, adapter, events)
    elif served is not None:
        await _retire_serving(context, adapter, events)
    status = model_adapter_status(adapter, secret=secret, serving=observation, now=context.clock())
    await _write(context, obj, adapter, status, events)


def _ready_event(before: ModelAdapterStatus, after: ModelAdapterStatus) -> tuple[str, str, str] | None:
    old = find_condition(before.conditions, ModelAdapterConditionType.READY)
    new = find_condition(after.conditions, ModelAdapterConditionType.READY)
    if new is None or (old is not None and (old.status, old.reason) == (new.status, new.reason)):
        return None
    return ("Normal" if new.status == ConditionStatus.TRUE else "Warning", new.reason, new.message)


async def _write(
    context: OperatorContext,
    obj: JsonObject,
    adapter: ModelAdapter,
    status: ModelAdapterStatus,
    events: Events,
) -> None:
    before = adapter.status or ModelAdapterStatus()
    # Compared as it will be stored, free text redacted: a message redaction changes is no change.
    status = ModelAdapterStatus.model_validate(context.kube.redact_status(status.to_kubernetes()))
    if status != before:
        ready = _ready_event(before, status)
        if ready is not None:
            events.append(ready)
        await context.kube.replace_status({**obj, "status": status.to_kubernetes()})
    for type_, reason, message in events:
        try:
            await context.kube.event(obj, type_=type_, reason=reason, message=message)
        except KubeError as exc:  # an event is worth a log line, not a failed reconcile
            logger.warning(
                "Failed to record event adapter=%s reason=%s error=%s", obj["metadata"]["name"], reason, exc
            )


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """Add the ModelAdapter handlers to `registry`."""

    async def reconcile(namespace: str, name: str) -> None:
        await reconcile_adapter(context, namespace, name)

    # Secrets and pods are not watched (the operator would hold every Secret and every runner pod in
    # memory); the timer notices a Secret created later, or a pod the scheduler could not place.
    reconcile_or_retry = register_level_handlers(
        registry,
        "modeladapters",
        "modeladapter",
        reconcile,
        interval=context.settings.resync_seconds,
        metrics=context.metrics,
        kind="ModelAdapter",
    )

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        id="modeladapter-deployment-event",
        registry=registry,
        labels={
            "app.kubernetes.io/component": serving_logic.COMPONENT,
            LABEL_MANAGED_BY: serving_logic.MANAGED_BY,
        },
    )
    async def on_deployment(body: kopf.Body, **_: Any) -> None:
        owners = [o for o in body.metadata.get("ownerReferences", []) if o.get("kind") == "ModelAdapter"]
        for owner in owners:
            await reconcile_or_retry(body.metadata["namespace"], owner["name"])
