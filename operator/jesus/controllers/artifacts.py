"""The operator's part in durable artifacts (ADR 0030, docs/artifacts.md).

- each attempt's Job gets an upload grant for its own prefix (signed here, no request);
- when an attempt ends, what its pod listed is checked in the bucket (a pod can lie): only entries
  found with their digest and size reach the status, the others become a Warning Event;
- a finished run's expiry goes to the bucket's expiry index, and a background sweep deletes the
  artifacts of runs whose retention has passed; a finished run's status drops its `s3://` entries and
  says so (`ArtifactsDeleted`) once its retention has passed, so it never points at what is gone.

The S3 client is blocking (boto3): every call runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from jesus.api.agentrun import AgentRun
from jesus.api.agentrun import AgentRunConditionType as C
from jesus.api.agentrun import AgentRunReason as R
from jesus.controllers.agentrun.draft import StatusDraft
from jesus.logic import manifests
from jesus.logic.artifacts import expires_at, grant_lifetime_seconds, is_expired
from jesus.logic.clock import Clock, format_time
from jesus.logic.records import Decision, DecisionAction
from jesus.logic.runs import JobObservation
from jesus.records.artifacts import ArtifactStoreError, S3Artifacts

logger = logging.getLogger(__name__)

UNVERIFIED = "ArtifactUnverified"
"""The Warning Event of an artifact entry the bucket does not bear out."""
SWEEP_SECONDS = 300.0


def attempt_grant(store: S3Artifacts | None, run: AgentRun, attempt: int) -> str | None:
    """The attempt's grant as the Job's environment carries it; None without an S3 store."""
    if store is None:
        return None
    lifetime = grant_lifetime_seconds(run.spec.limits.timeout_seconds, manifests.TIMEOUT_GRACE_SECONDS)
    grant = store.grant(run.metadata.namespace or "", run.metadata.uid or "", attempt, lifetime)
    return grant.to_json()


async def verify_attempt(
    store: S3Artifacts | None, draft: StatusDraft, attempt: int, observed: JobObservation
) -> JobObservation:
    """The observation with only the artifact entries the bucket bears out; a Warning Event each for
    the others. Without a store, or when the store cannot be reached, entries are kept unverified
    (and the latter said), never a failed reconcile."""
    result = observed.result
    if store is None or result is None or not result.artifacts:
        return observed
    run = draft.run
    try:
        verified = await asyncio.to_thread(
            store.verify, result.artifacts, run.metadata.namespace or "", run.metadata.uid or "", attempt
        )
    except ArtifactStoreError as exc:
        draft.events.append(
            ("Warning", UNVERIFIED, f"attempt {attempt}: artifacts not checked: {exc}"[:1024])
        )
        return observed
    for problem in verified.problems:
        draft.events.append(("Warning", UNVERIFIED, f"attempt {attempt}: {problem}"[:1024]))
    if verified.problems:
        logger.warning(
            "Left out unverified artifacts run=%s/%s attempt=%d count=%d",
            run.metadata.namespace,
            run.metadata.name,
            attempt,
            len(verified.problems),
        )
    return dataclasses.replace(observed, result=dataclasses.replace(result, artifacts=verified.artifacts))


async def mark_retention(store: S3Artifacts | None, draft: StatusDraft) -> None:
    """Put a finished run into the bucket's expiry index (idempotent: the same key every time)."""
    run = draft.run
    moment = expires_at(draft.status.completion_time, run.spec.artifacts.retention_days)
    if store is None or moment is None:
        return
    try:
        await asyncio.to_thread(
            store.mark_expiry,
            run.metadata.namespace or "",
            run.metadata.uid or "",
            run.metadata.name or "",
            moment,
        )
    except ArtifactStoreError as exc:
        draft.events.append(("Warning", UNVERIFIED, f"the artifacts' expiry was not recorded: {exc}"[:1024]))


async def expire_in_status(store: S3Artifacts | None, draft: StatusDraft) -> None:
    """A finished run past its retention lists no `s3://` artifact, and the condition says when and how
    many went. Its objects are deleted here too (the sweep normally has; this covers a run whose expiry
    marker was never written), so the status never drops what is still stored."""
    status = draft.status
    retention = draft.run.spec.artifacts.retention_days
    if store is None or not is_expired(status.completion_time, retention, draft.now):
        return
    gone = [a for a in status.artifacts or [] if a.uri.startswith("s3://")]
    if not gone:
        return
    run = draft.run
    try:
        await asyncio.to_thread(store.delete_run, run.metadata.namespace or "", run.metadata.uid or "")
    except ArtifactStoreError as exc:  # listed until they are gone; the next reconcile tries again
        logger.warning(
            "Failed to delete expired artifacts run=%s/%s error=%s",
            run.metadata.namespace,
            run.metadata.name,
            exc,
        )
        return
    status.artifacts = [a for a in status.artifacts or [] if not a.uri.startswith("s3://")] or None
    moment = expires_at(status.completion_time, retention)
    assert moment is not None
    draft.condition(
        C.ARTIFACTS_DELETED,
        True,
        R.RETENTION_EXPIRED,
        f"{len(gone)} artifact(s) deleted: retention of {retention} day(s) ended {format_time(moment)}",
    )


Expired = Callable[[str, str], Awaitable[None]]
"""Called with a run's namespace and name after its artifacts were deleted."""
Audit = Callable[[list[Decision]], None]


class RetentionSweeper:
    """Every `interval` seconds, deletes the artifacts of runs whose retention has passed."""

    def __init__(
        self,
        store: S3Artifacts,
        clock: Clock,
        *,
        interval: float = SWEEP_SECONDS,
        on_expired: Expired | None = None,
        audit: Audit | None = None,
    ) -> None:
        self.store, self.clock, self.interval = store, clock, interval
        self.on_expired, self.audit = on_expired, audit
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        """One sweep; returns how many runs' artifacts went."""
        now = self.clock()
        markers = await asyncio.to_thread(self.store.sweep, now)
        if self.audit is not None and markers:
            self.audit(
                [
                    Decision(
                        DecisionAction.EXPIRE_ARTIFACTS,
                        m.namespace,
                        m.name,
                        m.uid,
                        format_time(now),
                        {"expiredAt": format_time(m.moment), "prefix": m.run_prefix},
                    )
                    for m in markers
                ]
            )
        for marker in markers:
            if self.on_expired is not None:
                try:
                    await self.on_expired(marker.namespace, marker.name)
                except Exception as exc:  # the run may be gone; its status is no reason to stop sweeping
                    logger.debug(
                        "Expired run not updated run=%s/%s error=%s", marker.namespace, marker.name, exc
                    )
        return len(markers)

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except ArtifactStoreError as exc:
                logger.warning("Failed to sweep expired artifacts error=%s", exc)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Sweep in the background until `stop`."""
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop sweeping."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
