"""A run's money in the Budgets: take the holds admission decided, give them back, settle them.

Every operation goes through the ledger (the only writer of Budget status), keyed by the run's UID,
so a reconcile rerun after a crash neither holds nor charges twice.
"""

from __future__ import annotations

import logging

from jesus.api.agentrun import AgentRun, AgentRunPhase, BudgetReservation
from jesus.controllers.agentrun.draft import StatusDraft
from jesus.controllers.context import OperatorContext
from jesus.logic.ledger import LedgerResult, RunKey

logger = logging.getLogger(__name__)


def run_key(run: AgentRun) -> RunKey:
    """The ledger's key of `run`."""
    return RunKey(run.metadata.namespace or "", run.metadata.name or "", run.metadata.uid or "")


async def reserve_all(
    context: OperatorContext, run: AgentRun, budgets: list[tuple[str, str]], amount: int
) -> tuple[list[BudgetReservation], str | None]:
    """Hold `amount` on every Budget of `budgets`, all or nothing: the holds taken, or none and the
    refusal of the Budget that said no (its figures changed since admission decided)."""
    held: list[BudgetReservation] = []
    key = run_key(run)
    for namespace, name in budgets:
        result = await context.ledger.reserve(namespace, name, key, amount)
        await threshold_events(context, namespace, name, result)
        if not result.admitted:
            for reservation in held:  # all or nothing: give back what this attempt took
                await context.ledger.release(reservation.namespace, reservation.budget, key)
            return [], result.message
        held.append(BudgetReservation(namespace=namespace, budget=name, amount_micros=amount))
    return held, None


async def settle(context: OperatorContext, draft: StatusDraft, actual_micros: int) -> None:
    """Spend the run's actual cost on every Budget that holds it and drop the holds (once)."""
    key = run_key(draft.run)
    settled = []
    for reservation in draft.status.budget_reservations or []:
        if not reservation.settled:
            result = await context.ledger.settle(
                reservation.namespace, reservation.budget, key, actual_micros
            )
            await threshold_events(context, reservation.namespace, reservation.budget, result)
        settled.append(reservation.model_copy(update={"settled": True}))
    draft.status.budget_reservations = settled or None


async def release_on_delete(context: OperatorContext, run: AgentRun) -> None:
    """A deleted run gives back its holds; a run deleted mid-flight is charged what it held."""
    status = run.status
    if status is None:
        return
    key = run_key(run)
    running = status.phase in (AgentRunPhase.ADMITTED, AgentRunPhase.RUNNING)
    for reservation in status.budget_reservations or []:
        if reservation.settled:
            continue
        if running:
            await context.ledger.settle(
                reservation.namespace, reservation.budget, key, reservation.amount_micros
            )
        else:
            await context.ledger.release(reservation.namespace, reservation.budget, key)


async def threshold_events(context: OperatorContext, namespace: str, name: str, result: LedgerResult) -> None:
    """An Event on the Budget for each alert threshold the operation newly crossed."""
    if not result.newly_fired:
        return
    obj = context.cache.budgets.raw(namespace, name)
    if obj is None:
        return
    for threshold in result.newly_fired:
        await context.kube.event(
            obj,
            type_="Warning" if threshold >= 100 else "Normal",
            reason="ThresholdCrossed",
            message=(
                f"Budget {name} reached {threshold}% of its limit "
                f"({result.figures.utilization_percent}% spent or held)"
            ),
        )


async def settle_orphaned_holds(context: OperatorContext) -> int:
    """Charge the holds of runs that are gone, as `release_on_delete` would have: a run deleted while
    this operator was down (runs carry no finalizer, so nothing waits for it) is charged what it held.
    Only the shards this replica owns, and only when the API server says the run is gone (or is
    another run of the same name); how many holds were settled."""
    settled = 0
    for budget in context.cache.budgets.valid():
        budget_namespace, budget_name = budget.metadata.namespace or "", budget.metadata.name or ""
        for held in (budget.status.reservations if budget.status else None) or []:
            if not context.shards.owns(held.namespace, held.run):
                continue
            current = await context.kube.get("AgentRun", held.namespace, held.run)
            if current is not None and (held.uid is None or current["metadata"].get("uid") == held.uid):
                continue
            key = RunKey(held.namespace, held.run, held.uid or "")
            result = await context.ledger.settle(budget_namespace, budget_name, key, held.amount_micros)
            logger.warning(
                "Settled the hold of a run that is gone run=%s/%s budget=%s/%s charged=%d",
                held.namespace,
                held.run,
                budget_namespace,
                budget_name,
                held.amount_micros,
            )
            await threshold_events(context, budget_namespace, budget_name, result)
            settled += 1
    return settled
