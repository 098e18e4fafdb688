"""Short-term memory in a cluster: what finished runs' reflections teach goes to the archive, and the
archive's short-term lessons are offered to later runs of the same team (docs/reflection.md).

The runner pod's termination message holds only the reflection's verdict; the reflection itself is the
run's `reflection.json` artifact, read from the artifact store by its status entry (digest checked)
when the run is archived. Everything in it was written by the pod: it is held to the reflection's
schema, and a run reuses only its own team's lessons (jesus.logic.lessons, jesus.records.lessons).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from jesus.api.agentrun import AgentRunStatus, ArtifactRef
from jesus.api.common import ConditionStatus
from jesus.api.lesson import Lesson
from jesus.controllers.metrics import OperatorMetrics
from jesus.kube import JsonObject
from jesus.logic.clock import Clock, format_time
from jesus.logic.lessons import RunOrigin, learn_from_reflection
from jesus.records.artifacts import ArtifactStoreError, read_artifact
from jesus.records.lessons import LessonArchive
from jesus.records.store import StoreUnavailableError

if TYPE_CHECKING:  # the context holds this module's ShortTermMemory
    from jesus.controllers.context import OperatorContext

logger = logging.getLogger(__name__)

REFLECTION_ARTIFACT = "reflection.json"
# A reflection is a few KiB; a pod that wrote more is not read further.
REFLECTION_MAX_BYTES = 256 * 1024
# The archive's short-term lessons are read again after this long (or at once after a run taught one).
REFRESH_SECONDS = 30.0

ArtifactReader = Callable[[Mapping[str, Any], int], Awaitable[bytes]]
"""Reads one artifact by its status entry (`name`, `uri`, `digest`), at most the given number of
bytes, and raises OSError or ValueError unless what it read has that digest."""


async def read_from_store(context: OperatorContext, entry: Mapping[str, Any], limit: int) -> bytes:
    """An artifact from the operator's S3 store (`context.artifacts`), digest checked, off the loop.

    Only `s3://` entries: a pod names its artifacts' URIs, and a `file://` one would have the operator
    read its own files."""
    ref = ArtifactRef.model_validate(entry)
    if not ref.uri.startswith("s3://") or context.artifacts is None:
        raise ValueError(f"{ref.uri[:200]} is not in the operator's artifact store")
    if ref.size_bytes is not None and ref.size_bytes > limit:
        raise ValueError(f"{ref.name} has {ref.size_bytes} bytes, more than the {limit} read")
    try:
        return await asyncio.to_thread(read_artifact, ref, context.artifacts)
    except ArtifactStoreError as exc:
        raise OSError(str(exc)) from exc


class ShortTermMemory:
    """Learns from archived runs, and offers the archive's short-term lessons, cached on a clock."""

    def __init__(
        self,
        archive: LessonArchive,
        clock: Clock,
        read_artifact: ArtifactReader | None,
        metrics: OperatorMetrics | None = None,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.archive = archive
        self.clock = clock
        self.read_artifact = read_artifact
        self.metrics = metrics
        self.refresh_seconds = refresh_seconds
        self.cached: list[Lesson] = []
        """The archive's short-term lessons as last read (every team's; the lesson gauges read them)."""
        self._read_at: float | None = None

    async def lessons_for(self, team: str) -> list[Lesson]:
        """The team's short-term lessons. The archive being away never holds a run up: it is offered
        what was last read (perhaps nothing), and the failure is logged."""
        now = self.clock().timestamp()
        if self._read_at is None or now - self._read_at >= self.refresh_seconds:
            try:
                self.cached = await self.archive.lessons()
            except StoreUnavailableError as exc:
                logger.warning("Failed to read short-term lessons error=%s", exc)
            # Tried now either way: a database that is away is not asked again on every run.
            self._read_at = now
        return [lesson for lesson in self.cached if lesson.spec.scope.team == team]

    async def learn(self, obj: JsonObject) -> None:
        """Record what the finished run `obj`'s reflection teaches, when it passed the checklist.

        The archive being away raises StoreUnavailableError, so the archive writer tries the run again
        (recording is idempotent). A reflection that cannot be read or is not the checklist's shape
        teaches nothing; that is logged and counted, never retried.
        """
        metadata = obj.get("metadata") or {}
        namespace, name = metadata.get("namespace") or "", metadata.get("name") or ""
        status = AgentRunStatus.model_validate(obj.get("status") or {})
        reflected = next((c for c in status.conditions or [] if c.type == "Reflected"), None)
        if reflected is None or reflected.status is not ConditionStatus.TRUE:
            return
        artifacts = [
            a.model_dump(mode="json", by_alias=True, exclude_none=True) for a in status.artifacts or []
        ]
        entry = next((a for a in artifacts if a.get("name") == REFLECTION_ARTIFACT), None)
        if self.read_artifact is None:
            self._skipped(namespace, name, "missing", "the operator has no artifact store to read it from")
            return
        if entry is None or not entry.get("uri") or not entry.get("digest"):
            self._skipped(namespace, name, "missing", f"status lists no {REFLECTION_ARTIFACT} with a digest")
            return
        try:
            content = await self.read_artifact(entry, REFLECTION_MAX_BYTES)
            block = json.loads(content)
        except (OSError, ValueError) as exc:  # unreadable, another digest, too big, not JSON
            self._skipped(namespace, name, "unreadable", f"{REFLECTION_ARTIFACT}: {exc}")
            return
        team = str(((obj.get("spec") or {}).get("owner") or {}).get("team") or "")
        learned = learn_from_reflection(RunOrigin(name, namespace, team, artifacts), block)
        if learned.problem:
            self._skipped(namespace, name, "invalid", learned.problem)
            return
        recorded = await self.archive.record(learned, format_time(self.clock()))
        if recorded.new or recorded.reused:
            self._read_at = None  # offered from the next run on
            logger.info(
                "Learned from run run=%s/%s new=%s reused=%s",
                namespace,
                name,
                ",".join(recorded.new) or "-",
                ",".join(recorded.reused) or "-",
            )
        self._count("learned")

    def _skipped(self, namespace: str, name: str, result: str, why: str) -> None:
        logger.warning("Learned nothing from run run=%s/%s error=%s", namespace, name, why)
        self._count(result)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.lessons_learned.labels(result).inc()
