"""How the runner reaches models: a small protocol, and its in-process implementation over the router.

Runner pods use `jesus.runner.http_model.RouterHttpModelClient` instead, which calls the router
service with the run's token; both produce the same call records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from jesus_adapters.errors import FailedCallError
from jesus_adapters.types import ChatRequest, ChatResponse

if TYPE_CHECKING:  # the router (and every provider SDK behind it) loads only for in-process runs
    from jesus.logic.routing import RoutePlan
    from jesus.router.core import Router
    from jesus.router.ledger import RunLedger


class ModelCallError(FailedCallError):
    """A model call that failed for good; what its `kind` means to the run comes from the error table."""

    def __init__(self, kind: str, reason: str, *, record: dict[str, Any] | None) -> None:
        super().__init__(kind, reason)
        self.record = record


@dataclass(frozen=True, slots=True)
class ModelReply:
    """An answer and the router's record of the call (the JSON shape of `CallRecord.to_dict`)."""

    response: ChatResponse
    record: dict[str, Any]


class ModelClient(Protocol):
    """Sends one chat request for the run; raises ModelCallError when no model answers."""

    async def complete(self, request: ChatRequest) -> ModelReply:
        """Answer one request."""
        ...


class InProcessModelClient:
    """Calls the router in this process with the run's plan and ledger (local runs, `jesus run`)."""

    def __init__(self, router: Router, plan: RoutePlan, ledger: RunLedger) -> None:
        router.check_plan(plan)
        self.router = router
        self.plan = plan
        self.ledger = ledger

    async def complete(self, request: ChatRequest) -> ModelReply:
        """Route the request along the run's chain."""
        from jesus.router.routed import RouteError

        try:
            routed = await self.router.complete(self.plan, request, self.ledger)
        except RouteError as exc:
            raise ModelCallError(exc.kind, exc.reason, record=exc.record.to_dict()) from exc
        return ModelReply(routed.response, routed.record.to_dict())
