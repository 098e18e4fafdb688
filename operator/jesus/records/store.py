"""`RecordStore`: the archive and the audit log in one SQL database, written in single transactions.

Every write takes the audit chain's lock first (the `audit_head` row FOR UPDATE on PostgreSQL; BEGIN
IMMEDIATE, the database's one writer lock, on SQLite), so concurrent appenders, in one process or
several, extend one chain and never fork it. A finished run is inserted with its calls and its audit
rows in the same transaction: a process killed mid-write leaves nothing, and a second write of the same
UID changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jesus.logic.records import (
    AuditRow,
    ChainBreak,
    ChainVerifier,
    Decision,
    RunRecord,
    archive_decision,
    canonical_json,
    chain,
)
from jesus.records import upgrade
from jesus.records.schema import audit_head, audit_log, run_calls, runs
from jesus.records.urls import describe

logger = logging.getLogger(__name__)

VERIFY_BATCH = 5000


class StoreUnavailableError(Exception):
    """The database could not be reached (or was busy): worth trying again; the message names it."""


class RecordRefusedError(Exception):
    """The database refused what was written (a constraint, a value it cannot take): trying again would
    not help; the message names the run or the log and the database."""


# Connection trouble, timeouts, locks: the database may answer next time. Anything else it raises
# (IntegrityError, DataError, ProgrammingError) is about what was written.
_TRANSIENT = (OperationalError, InterfaceError, OSError)


@dataclass(frozen=True)
class Verification:
    """What `RecordStore.verify` found: the rows checked, the head, and the first break if any."""

    rows: int
    head_id: int
    head_hash: str
    broken: ChainBreak | None


def _sqlite_writer_lock(engine: AsyncEngine) -> None:
    """Make every SQLite transaction BEGIN IMMEDIATE: the write lock is taken when the transaction
    starts, so two appenders cannot both read the same chain head (SQLAlchemy's documented recipe)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN would be deferred
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class RecordStore:
    """The archive and the audit log of one database."""

    def __init__(self, url: URL, *, busy_timeout_seconds: float = 30.0) -> None:
        self.url = url
        self.sqlite = url.get_backend_name() == "sqlite"
        if self.sqlite:
            self.engine = create_async_engine(url, connect_args={"timeout": busy_timeout_seconds})
            _sqlite_writer_lock(self.engine)
        else:
            self.engine = create_async_engine(
                url,
                pool_pre_ping=True,
                pool_size=2,
                max_overflow=2,
                connect_args={"connect_timeout": max(int(busy_timeout_seconds), 1)},
            )

    def __str__(self) -> str:
        return describe(self.url)

    async def close(self) -> None:
        """Close the pool's connections."""
        await self.engine.dispose()

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        if self.sqlite and self.url.database and self.url.database != ":memory:":
            folder = Path(self.url.database).parent
            if not folder.is_dir():  # SQLite's own message says only "unable to open database file"
                raise StoreUnavailableError(f"failed to migrate the archive {self}: no folder {folder}")
        try:
            await upgrade.migrate(self.engine)
        except (*_TRANSIENT, DBAPIError) as exc:
            raise StoreUnavailableError(f"failed to migrate the archive {self}: {_why(exc)}") from exc

    # Writing.

    async def archive_run(self, record: RunRecord, history: Sequence[Decision], now: str) -> bool:
        """Write `record`, its calls, the decisions of `history` not yet logged and the archive's own
        audit row, in one transaction; False (nothing written) when the UID is already archived."""
        try:
            async with self.engine.begin() as connection:
                head = await self._lock_chain(connection)
                inserted = await self._insert_run(connection, record, now)
                if not inserted:
                    return False
                if record.calls:
                    await connection.execute(insert(run_calls), _call_values(record))
                await self._append(connection, head, [*history, archive_decision(record, now)], now)
                return True
        except _TRANSIENT as exc:
            raise StoreUnavailableError(f"failed to archive {_run(record)} to {self}: {_why(exc)}") from exc
        except DBAPIError as exc:
            raise RecordRefusedError(f"{self} refused {_run(record)}: {_why(exc)}") from exc

    async def append(self, entries: Iterable[Decision], now: str) -> int:
        """Append the entries whose key is not yet logged; the number of rows appended."""
        entries = list(entries)
        if not entries:
            return 0
        keys = [e.key for e in entries]
        try:
            async with self.engine.begin() as connection:
                head = await self._lock_chain(connection)
                return await self._append(connection, head, entries, now)
        except _TRANSIENT as exc:
            raise StoreUnavailableError(f"failed to append to the audit log in {self}: {_why(exc)}") from exc
        except DBAPIError as exc:
            raise RecordRefusedError(f"{self} refused audit entries {keys[:3]}: {_why(exc)}") from exc

    async def _lock_chain(self, connection: AsyncConnection) -> tuple[int, str]:
        """Take the chain's lock (see the module docstring) and return its head: last id and hash."""
        query = select(audit_head.c.last_id, audit_head.c.last_hash).where(audit_head.c.id == 1)
        if not self.sqlite:
            query = query.with_for_update()
        row = (await connection.execute(query)).one_or_none()
        if row is None:
            raise StoreUnavailableError(
                f"the archive {self} has no audit_head row: run `jesus archive migrate`"
            )
        return int(row.last_id), str(row.last_hash)

    async def _insert_run(self, connection: AsyncConnection, record: RunRecord, now: str) -> bool:
        values = _run_values(record, now)
        statement = (sqlite_insert(runs) if self.sqlite else pg_insert(runs)).values(values)
        # RETURNING, not rowcount: what a skipped row reports as rowcount differs between drivers.
        result = await connection.execute(
            statement.on_conflict_do_nothing(index_elements=["uid"]).returning(runs.c.uid)
        )
        return result.first() is not None

    async def _append(
        self, connection: AsyncConnection, head: tuple[int, str], entries: Sequence[Decision], now: str
    ) -> int:
        keys = [e.key for e in entries]
        logged = set(
            (
                await connection.execute(select(audit_log.c.entry_key).where(audit_log.c.entry_key.in_(keys)))
            ).scalars()
        )
        fresh: dict[str, Decision] = {}
        for entry in entries:
            if entry.key not in logged:
                fresh.setdefault(entry.key, entry)
        if not fresh:
            return 0
        rows = chain(fresh.values(), head[0], head[1], now)
        await connection.execute(insert(audit_log), [_audit_values(row) for row in rows])
        last = rows[-1]
        await connection.execute(
            update(audit_head).where(audit_head.c.id == 1).values(last_id=last.id, last_hash=last.hash)
        )
        return len(rows)

    # Reading.

    async def is_archived(self, uid: str) -> bool:
        """Whether a run of this UID is in the archive."""
        async with self.engine.connect() as connection:
            found = await connection.execute(select(runs.c.uid).where(runs.c.uid == uid))
            return found.first() is not None

    async def count_runs(self) -> int:
        """How many runs the archive holds."""
        async with self.engine.connect() as connection:
            return int((await connection.execute(select(func.count()).select_from(runs))).scalar_one())

    async def audit_rows(self) -> AsyncIterator[AuditRow]:
        """Every audit row in id order, read in batches."""
        after = -1
        while True:
            async with self.engine.connect() as connection:
                batch = (
                    await connection.execute(
                        select(audit_log)
                        .where(audit_log.c.id > after)
                        .order_by(audit_log.c.id)
                        .limit(VERIFY_BATCH)
                    )
                ).all()
            for row in batch:
                yield _audit_row(row._mapping)
            if len(batch) < VERIFY_BATCH:
                return
            after = int(batch[-1].id)

    async def verify(self) -> Verification:
        """Check the whole chain, then that the head agrees with its last row."""
        verifier = ChainVerifier()
        try:
            async for row in self.audit_rows():
                broken = verifier.check(row)
                if broken is not None:
                    return Verification(verifier.rows, verifier.last_id, verifier.last_hash, broken)
            async with self.engine.connect() as connection:
                head = (
                    await connection.execute(select(audit_head.c.last_id, audit_head.c.last_hash))
                ).one_or_none()
        except (*_TRANSIENT, DBAPIError) as exc:
            raise StoreUnavailableError(f"failed to read the audit log in {self}: {_why(exc)}") from exc
        if head is None:
            broken = ChainBreak(0, "the audit_head row is missing")
        else:
            broken = verifier.check_head(int(head.last_id), str(head.last_hash))
        return Verification(verifier.rows, verifier.last_id, verifier.last_hash, broken)


def _run(record: RunRecord) -> str:
    return f"AgentRun {record.namespace}/{record.name} (uid {record.uid})"


def _why(exc: BaseException) -> str:
    """The driver's own message, on one line, without SQLAlchemy's statement dump."""
    original = getattr(exc, "orig", None) or exc
    return " ".join(f"{type(original).__name__}: {original}".split())[:500]


def _run_values(record: RunRecord, now: str) -> dict[str, Any]:
    return {
        "uid": record.uid,
        "namespace": record.namespace,
        "name": record.name,
        "phase": record.phase,
        "team": record.team,
        "owner_user": record.user,
        "created": record.created,
        "start_time": record.start_time,
        "completion_time": record.completion_time,
        "spec_digest": record.spec_digest,
        "trace_id": record.trace_id,
        "cost_micros": record.cost_micros,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "attempts": record.attempts,
        "record_version": record.document["recordVersion"],
        "record": record.document_json,
        "archived_at": now,
    }


def _call_values(record: RunRecord) -> list[dict[str, Any]]:
    return [
        {
            "run_uid": record.uid,
            "call_index": call.index,
            "adapter": call.adapter,
            "model": call.model,
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "cost_micros": call.cost_micros,
            "duration_milliseconds": call.duration_milliseconds,
            "fallbacks": canonical_json([{"adapter": a, "errorClass": e} for a, e in call.fallbacks]),
            "namespace": record.namespace,
            "completion_time": record.completion_time,
        }
        for call in record.calls
    ]


def _audit_values(row: AuditRow) -> dict[str, Any]:
    content = row.content
    return {
        "id": row.id,
        "recorded_at": row.recorded_at,
        "entry_key": content["key"],
        "action": content["action"],
        "namespace": content["namespace"],
        "name": content["name"],
        "run_uid": content["uid"],
        "at": content["at"],
        "detail": canonical_json(content["detail"]),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def _audit_row(values: Any) -> AuditRow:
    """A stored row as the chain sees it; its content is rebuilt from the columns, so a change to any
    column changes the hash."""
    try:
        detail: Any = json.loads(values["detail"])
    except (TypeError, ValueError):
        detail = {"unreadable": str(values["detail"])}
    content = {
        "key": values["entry_key"],
        "action": values["action"],
        "namespace": values["namespace"],
        "name": values["name"],
        "uid": values["run_uid"],
        "at": values["at"],
        "detail": detail,
    }
    return AuditRow(
        int(values["id"]), str(values["recorded_at"]), content, str(values["prev_hash"]), str(values["hash"])
    )
