"""Re-run a reconcile whose status write found the object changed, before handing it back to Kopf.

Kopf retries a failed change handler, but not an `on.event` handler, and a Deployment's or adapter's
event is often the only trigger a reconcile gets for a while. A conflict means the object moved on
while we decided (typically Kopf's own annotation patch), so the right answer is to decide again on
the fresh object at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import kopf
import pydantic

from jesus.kube import ConflictError, JsonObject

if TYPE_CHECKING:
    from jesus.controllers.context import OperatorContext

M = TypeVar("M", bound=pydantic.BaseModel)

CONFLICT_TRIES = 3


async def until_written(attempt: Callable[[], Awaitable[None]], what: str) -> None:
    """Run `attempt` (read, decide, write) again after each ConflictError, a few times."""
    for _ in range(CONFLICT_TRIES - 1):
        try:
            await attempt()
        except ConflictError:
            continue
        return
    try:
        await attempt()
    except ConflictError as exc:
        raise kopf.TemporaryError(f"{what} kept changing while reconciling: {exc}", delay=0.2) from exc


async def reconcile_live(
    context: OperatorContext,
    model: type[M],
    namespace: str,
    name: str,
    decide: Callable[[JsonObject, M], Awaitable[None]],
) -> None:
    """Under the object's lock: read it, parse it, `decide` on it; again on a conflict.

    A missing or deleting object is left alone; an invalid one is a PermanentError naming it.
    """
    kind = model.__name__

    async def attempt() -> None:
        obj = await context.kube.get(kind, namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        try:
            parsed = model.model_validate(obj)
        except pydantic.ValidationError as exc:
            raise kopf.PermanentError(f"{kind} {namespace}/{name} is invalid: {exc}") from exc
        await decide(obj, parsed)

    async with context.lock(kind, namespace, name):
        await until_written(attempt, f"{kind} {namespace}/{name}")
