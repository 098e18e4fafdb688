"""Level-triggered wiring shared by the reconcilers: create, update, resume and a timer call one reconcile.

Every kind's reconcile compares desired with actual whatever woke it, so the same four handlers serve
each kind; only the reconcile, the handler ids and the timer's interval differ.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from jesus.api.common import GROUP, VERSION
from jesus.controllers.metrics import OperatorMetrics
from jesus.kube import KubeError

Reconcile = Callable[[str, str], Awaitable[None]]
"""A reconcile of one object, by namespace and name."""


def retrying_on_api_errors(reconcile: Reconcile) -> Reconcile:
    """`reconcile`, with a failed API request handed back to Kopf as a short TemporaryError."""

    async def guarded(namespace: str, name: str) -> None:
        try:
            await reconcile(namespace, name)
        except KubeError as exc:
            raise kopf.TemporaryError(f"API request failed: {exc}", delay=1) from exc

    return guarded


def register_level_handlers(
    registry: kopf.OperatorRegistry,
    plural: str,
    id_prefix: str,
    reconcile: Reconcile,
    *,
    interval: float,
    metrics: OperatorMetrics | None = None,
    kind: str = "",
) -> Reconcile:
    """Call `reconcile` on resume, create, update and every `interval` seconds; return it, guarded.

    Handler ids are `<id_prefix>-resume`, `-create`, `-update` and `-resync` (Kopf keys its progress
    on them, so they must not change). The guarded reconcile is returned for the kind's event handlers.
    With `metrics`, every reconcile and every one that raises is counted under `kind` (default: `plural`).
    """
    resource = (GROUP, VERSION, plural)
    guarded = retrying_on_api_errors(metrics.counted(kind or plural, reconcile) if metrics else reconcile)

    @kopf.on.resume(*resource, id=f"{id_prefix}-resume", registry=registry)
    @kopf.on.create(*resource, id=f"{id_prefix}-create", registry=registry)
    @kopf.on.update(*resource, id=f"{id_prefix}-update", registry=registry)
    async def on_change(*, namespace: str | None, name: str, **_: Any) -> None:
        await guarded(namespace or "", name)

    @kopf.timer(*resource, id=f"{id_prefix}-resync", interval=interval, registry=registry)
    async def on_timer(*, namespace: str | None, name: str, **_: Any) -> None:
        await guarded(namespace or "", name)

    return guarded
