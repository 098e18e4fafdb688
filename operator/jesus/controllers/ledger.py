"""The budget ledger: the operator is the only writer of Budget status.

Operations on one Budget queue up and are applied in batches: a batch reads the Budget once, applies
every queued operation in order (each admitting or refusing on the figures the previous ones left),
and writes the status once with the resourceVersion it read. A conflict re-reads and re-applies the
whole batch, so concurrent runs cannot overspend and a thousand admissions cost a handful of writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from jesus.api.budget import Budget
from jesus.controllers.metrics import OperatorMetrics
from jesus.kube import ConflictError, KubeClient
from jesus.logic import ledger
from jesus.logic.budget import current_figures
from jesus.logic.ledger import LedgerResult

logger = logging.getLogger(__name__)

Operation = Callable[[Budget, datetime], tuple[Budget, LedgerResult]]

MAX_CONFLICT_RETRIES = 20


class BudgetGoneError(Exception):
    """The Budget was deleted while an operation waited for it."""


@dataclass
class _Queue:
    pending: list[tuple[Operation, asyncio.Future[LedgerResult]]] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None


class BudgetLedger:
    """Serialises and batches every write to Budget status in this operator."""

    def __init__(
        self, kube: KubeClient, clock: Callable[[], datetime], metrics: OperatorMetrics | None = None
    ) -> None:
        self._kube = kube
        self._metrics = metrics
        self._clock = clock
        self._queues: dict[tuple[str, str], _Queue] = {}
        self.writes = 0  # status writes that landed, for the load benchmark

    async def apply(self, namespace: str, name: str, operation: Operation) -> LedgerResult:
        """Queue `operation` for Budget namespace/name and wait until its batch is written."""
        queue = self._queues.setdefault((namespace, name), _Queue())
        future: asyncio.Future[LedgerResult] = asyncio.get_running_loop().create_future()
        queue.pending.append((operation, future))
        if queue.worker is None or queue.worker.done():
            queue.worker = asyncio.create_task(self._drain(namespace, name, queue))
        return await future

    async def _drain(self, namespace: str, name: str, queue: _Queue) -> None:
        while queue.pending:
            batch, queue.pending = queue.pending, []
            try:
                results = await self._commit(namespace, name, [op for op, _ in batch])
            except Exception as exc:  # every waiter learns why, none hangs
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _commit(self, namespace: str, name: str, operations: list[Operation]) -> list[LedgerResult]:
        for _ in range(MAX_CONFLICT_RETRIES):
            obj = await self._kube.get("Budget", namespace, name)
            if obj is None:
                raise BudgetGoneError(f"Budget {namespace}/{name} does not exist")
            original = Budget.model_validate(obj)
            now = self._clock()
            budget, _ = ledger.refresh(original, now)
            results: list[LedgerResult] = []
            for operation in operations:
                budget, result = operation(budget, now)
                results.append(result)
            if budget.status == original.status:
                return results
            body = budget.to_kubernetes()
            body["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
            try:
                await self._kube.replace_status(body)
            except ConflictError:
                continue
            self.writes += 1
            if self._metrics is not None and budget.status is not None:
                self._metrics.budget(
                    namespace,
                    name,
                    spent=budget.status.spent_micros,
                    reserved=budget.status.reserved_micros,
                    limit=budget.spec.limit_micros,
                )
            logger.info(
                "Updated budget ledger budget=%s/%s operations=%d spent=%s reserved=%s",
                namespace,
                name,
                len(operations),
                budget.status.spent_micros if budget.status else 0,
                budget.status.reserved_micros if budget.status else 0,
            )
            return results
        raise ConflictError(
            409, "Conflict", f"Budget {namespace}/{name} kept changing; gave up after retries"
        )

    async def reserve(self, namespace: str, name: str, run: ledger.RunKey, amount: int) -> LedgerResult:
        """Hold `amount` micro-units for `run` (idempotent)."""
        return await self.apply(namespace, name, lambda b, now: ledger.reserve(b, run, amount, now))

    async def settle(self, namespace: str, name: str, run: ledger.RunKey, actual: int) -> LedgerResult:
        """Spend `actual` for `run` and drop its hold (once)."""
        return await self.apply(namespace, name, lambda b, now: ledger.settle(b, run, actual, now))

    async def release(self, namespace: str, name: str, run: ledger.RunKey) -> LedgerResult:
        """Drop `run`'s hold without spending (once)."""
        return await self.apply(namespace, name, lambda b, now: ledger.release(b, run, now))

    async def refresh(self, namespace: str, name: str) -> LedgerResult:
        """Roll the period over and bring figures and conditions up to date."""

        def operation(budget: Budget, now: datetime) -> tuple[Budget, LedgerResult]:
            return budget, LedgerResult(budget.metadata.name or "", True, current_figures(budget, now))

        return await self.apply(namespace, name, operation)
