"""The RoutePolicy reconciler: which adapters of the chain exist and are ready.

One level-based reconcile (`reconcile_route_policy`) serves create, update, resume, the resync timer,
and every change of a ModelAdapter in the namespace (its Ready condition decides the chain's). Status
is written only when it changed; runs whose policy has no ready adapter wait (the AgentRun reconciler
reads the Ready condition written here).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from jesus.api.common import GROUP, VERSION, ConditionStatus
from jesus.api.routepolicy import RoutePolicy, RoutePolicyConditionType, RoutePolicyStatus
from jesus.controllers.context import OperatorContext
from jesus.controllers.level import register_level_handlers
from jesus.controllers.retry import reconcile_live
from jesus.kube import JsonObject, KubeError
from jesus.logic.conditions import find_condition
from jesus.logic.routes import route_policy_status

logger = logging.getLogger(__name__)


async def reconcile_route_policy(context: OperatorContext, namespace: str, name: str) -> None:
    """Resolve one RoutePolicy's chain against the adapters of its namespace and write the result."""
    await reconcile_live(
        context, RoutePolicy, namespace, name, lambda obj, policy: _decide(context, obj, policy)
    )


async def _decide(context: OperatorContext, obj: JsonObject, policy: RoutePolicy) -> None:
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    status = route_policy_status(policy, context.cache.adapters.by_name(namespace), now=context.clock())
    # Compared as it will be stored, free text redacted: a message redaction changes is no change.
    status = RoutePolicyStatus.model_validate(context.kube.redact_status(status.to_kubernetes()))
    before = policy.status or RoutePolicyStatus()
    if status == before:
        return
    await context.kube.replace_status({**obj, "status": status.to_kubernetes()})
    old = find_condition(before.conditions, RoutePolicyConditionType.READY)
    new = find_condition(status.conditions, RoutePolicyConditionType.READY)
    if new is not None and (old is None or (old.status, old.reason) != (new.status, new.reason)):
        logger.info(
            "Resolved route chain namespace=%s name=%s ready=%s", namespace, name, status.resolved_chain
        )
        type_ = "Normal" if new.status == ConditionStatus.TRUE else "Warning"
        try:
            await context.kube.event(obj, type_=type_, reason=new.reason, message=new.message)
        except KubeError as exc:
            logger.warning("Failed to record event policy=%s reason=%s error=%s", name, new.reason, exc)


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """Add the RoutePolicy handlers to `registry`."""

    async def reconcile(namespace: str, name: str) -> None:
        await reconcile_route_policy(context, namespace, name)

    reconcile_or_retry = register_level_handlers(
        registry,
        "routepolicies",
        "routepolicy",
        reconcile,
        interval=context.settings.resync_seconds,
        metrics=context.metrics,
        kind="RoutePolicy",
    )

    @kopf.on.event(GROUP, VERSION, "modeladapters", id="routepolicy-adapter-event", registry=registry)
    async def on_adapter(body: kopf.Body, **_: Any) -> None:
        namespace, adapter = body.metadata["namespace"], body.metadata["name"]
        for name in context.cache.route_policies.names_referring(namespace, adapter):
            await reconcile_or_retry(namespace, name)
