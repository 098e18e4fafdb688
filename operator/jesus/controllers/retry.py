"""Re-run a reconcile whose status write found the object changed, before handing it back to Kopf.

Kopf retries a failed change handler, but not an `on.event` handler, and a Deployment's or adapter's
event is often the only trigger a reconcile gets for a while. A conflict means the object moved on
while we decided (typically Kopf's own annotation patch), so the right answer is to decide again on
the fresh object at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import kopf

from jesus.controllers.kube import ConflictError

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
