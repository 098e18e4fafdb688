"""The operator's archive writer: finished runs and decisions go to the SQL archive off the reconcile path.

Reconciles only hand records over (`offer_run`, `offer_decisions`) and never wait for the database; one
background task writes them in order and, when the database is down, keeps them and tries again with a
growing delay, counting what waits in `jesus_archive_pending`. A run's `Archived` condition says where it
stands: True once its record is in the archive, False (ArchivePending, with the error) while the writer
cannot reach the database. Nothing is lost to an operator restart: a finished run without `Archived=True`
is offered again by the reconcile that every resumed run gets, and the archive ignores a UID it holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from jesus.api.agentrun import AgentRunStatus
from jesus.controllers.metrics import OperatorMetrics
from jesus.kube import JsonObject
from jesus.logic.clock import Clock, format_time
from jesus.logic.records import ArchiveRecordError, Decision, build_run_record, decisions
from jesus.records import RecordRefusedError, RecordStore, StoreUnavailableError

logger = logging.getLogger(__name__)

RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
DECISION_BATCH = 200

Archived = Callable[[str, str], Awaitable[None]]
"""Called with a run's namespace and name once its record is in the archive."""

Learn = Callable[[JsonObject], Awaitable[None]]
"""Called with each archived run: what its reflection teaches (controllers.memory). It raises
StoreUnavailableError when the archive is away, and the run is written (and learned from) again."""


@dataclass
class _PendingRun:
    namespace: str
    name: str
    obj: JsonObject


class Archiver:
    """Writes what reconciles offer, in the background, retrying while the database is away."""

    def __init__(
        self,
        store: RecordStore,
        clock: Clock,
        metrics: OperatorMetrics | None = None,
        *,
        on_archived: Archived | None = None,
        learn: Learn | None = None,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.on_archived = on_archived
        self.learn = learn
        self.retry_delays = tuple(retry_delays)
        self.archived: set[str] = set()
        """UIDs this process saw in the archive (written now, or found there)."""
        self.error: str | None = None
        """The last write's error while the writer is failing; None when the last write worked."""
        self._runs: OrderedDict[str, _PendingRun] = OrderedDict()
        self._decisions: list[Decision] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._callbacks: set[asyncio.Task[None]] = set()

    # What reconciles call: never waits.

    def offer_run(self, obj: JsonObject) -> None:
        """Queue the finished run `obj` for the archive (once per UID, the latest copy kept)."""
        metadata = obj.get("metadata") or {}
        uid = metadata.get("uid") or ""
        if not uid or uid in self.archived:
            return
        self._runs[uid] = _PendingRun(metadata.get("namespace") or "", metadata.get("name") or "", obj)
        self._changed()

    def offer_decisions(self, entries: Sequence[Decision]) -> None:
        """Queue audit entries (the archive ignores a key it already logged)."""
        if entries:
            self._decisions.extend(entries)
            self._changed()

    @property
    def pending(self) -> int:
        """Runs and audit entries waiting to be written."""
        return len(self._runs) + len(self._decisions)

    def _changed(self) -> None:
        if self.metrics is not None:
            self.metrics.archive_pending.set(self.pending)
        self._wake.set()

    # The writer.

    def start(self) -> None:
        """Start the background writer (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="archive-writer")

    async def stop(self) -> None:
        """Stop the writer; what is still queued is offered again after a restart (see the docstring)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.store.close()

    async def run(self) -> None:
        """Write until cancelled: each pass drains the queue, a failure waits and tries again."""
        failures = 0
        while True:
            if not self.pending:
                self._wake.clear()
                await self._wake.wait()
            try:
                await self.drain()
            except Exception as exc:  # StoreUnavailableError, or an unforeseen one: the writer must go on
                delay = self.retry_delays[min(failures, len(self.retry_delays) - 1)]
                failures += 1
                if self.error is None or failures in (1, 10) or failures % 100 == 0:
                    logger.warning(
                        "Failed to write to the archive pending=%d retryIn=%.1fs error=%s",
                        self.pending,
                        delay,
                        exc,
                    )
                self.error = str(exc)
                if self.metrics is not None:
                    self.metrics.archive_writes.labels("failed").inc()
                await asyncio.sleep(delay)
            else:
                if self.error is not None:
                    logger.info("Reached the archive again pending=%d", self.pending)
                failures, self.error = 0, None

    async def drain(self) -> None:
        """Write everything queued now: decisions first (in batches), then each run in order."""
        while self._decisions:
            batch = self._decisions[:DECISION_BATCH]
            try:
                appended = await self.store.append(batch, format_time(self.clock()))
            except RecordRefusedError as exc:
                # What the database refuses it will refuse again: say so and go on with the rest.
                logger.error("Failed to log decisions entries=%d error=%s", len(batch), exc)
                appended = 0
            del self._decisions[: len(batch)]
            self._count_audit(appended)
            self._changed()
        while self._runs:
            uid, pending = next(iter(self._runs.items()))
            await self._write_run(uid, pending)
            self._runs.pop(uid, None)
            self._changed()

    async def _write_run(self, uid: str, pending: _PendingRun) -> None:
        now = format_time(self.clock())
        try:
            record = build_run_record(pending.obj)
        except (ArchiveRecordError, ValueError) as exc:
            # A run the archive cannot take will not get better by waiting: say so once and move on.
            logger.error(
                "Failed to build archive record run=%s/%s error=%s", pending.namespace, pending.name, exc
            )
            if self.metrics is not None:
                self.metrics.archive_writes.labels("invalid").inc()
            return
        status = AgentRunStatus.model_validate(pending.obj.get("status") or {})
        history = decisions(None, status, namespace=record.namespace, name=record.name, uid=uid, now=now)
        try:
            written = await self.store.archive_run(record, history, now)
        except RecordRefusedError as exc:
            logger.error("Failed to archive run run=%s/%s error=%s", pending.namespace, pending.name, exc)
            if self.metrics is not None:
                self.metrics.archive_writes.labels("invalid").inc()
            return
        if self.learn is not None:
            await self._learn(pending)
        self.archived.add(uid)
        if self.metrics is not None:
            self.metrics.archive_writes.labels("archived" if written else "duplicate").inc()
        if written:
            logger.info(
                "Archived run run=%s/%s uid=%s calls=%d",
                record.namespace,
                record.name,
                uid,
                len(record.calls),
            )
        if self.on_archived is not None:
            task = asyncio.get_running_loop().create_task(self._notify(pending.namespace, pending.name))
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    async def _learn(self, pending: _PendingRun) -> None:
        assert self.learn is not None
        try:
            await self.learn(pending.obj)
        except StoreUnavailableError:
            raise  # the writer tries the run again: archiving it and learning from it are idempotent
        except Exception:  # a bug in learning must not stop the archive
            logger.exception("Failed to learn from run run=%s/%s", pending.namespace, pending.name)

    async def _notify(self, namespace: str, name: str) -> None:
        assert self.on_archived is not None
        try:
            await self.on_archived(namespace, name)
        except Exception as exc:  # the run's own timer gets there too; one failure is a log line
            logger.warning("Failed to mark run archived run=%s/%s error=%s", namespace, name, exc)

    def _count_audit(self, appended: int) -> None:
        if self.metrics is not None and appended:
            self.metrics.audit_rows.inc(appended)
