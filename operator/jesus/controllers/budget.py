"""The Budget reconciler: periods roll over, figures and conditions stay current.

Spending and holds are written by the ledger as runs are admitted and settled; this reconciler only
asks the ledger to refresh, so the ledger stays the single writer of Budget status.
"""

from __future__ import annotations

import kopf

from jesus.controllers.context import OperatorContext
from jesus.controllers.ledger import BudgetGoneError
from jesus.controllers.level import register_level_handlers
from jesus.kube import KubeError


async def reconcile_budget(context: OperatorContext, namespace: str, name: str) -> None:
    """Roll the Budget's period over if it ended and bring its conditions up to date."""
    try:
        await context.ledger.refresh(namespace, name)
    except BudgetGoneError:
        return
    except KubeError as exc:
        raise kopf.TemporaryError(f"API request failed: {exc}", delay=1) from exc


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """Add the Budget handlers to `registry`."""

    async def reconcile(namespace: str, name: str) -> None:
        await reconcile_budget(context, namespace, name)

    register_level_handlers(
        registry,
        "budgets",
        "budget",
        reconcile,
        interval=max(context.settings.resync_seconds, 30.0),
        metrics=context.metrics,
        kind="Budget",
    )
