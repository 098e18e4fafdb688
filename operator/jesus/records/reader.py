"""`ArchiveReader`: the read API's queries over the archive (docs/api.md).

A reader has its own engine: no writer lock (the store's SQLite connections BEGIN IMMEDIATE, which
would make every read wait for the operator's writes and each other), a larger pool for concurrent
requests, and only SELECTs. Every query takes the namespaces the caller may read; `None` means all
(local mode), an empty set means none, and a namespace outside the set is never queried.

Lists are newest first by completion time, then UID, and page by keyset (the last row's position), so a
page is as fast at the end of the archive as at its start and rows archived meanwhile never shift a
page. Runs with a completion time and those without are asked for apart, each in its index's own order
(`completion_time DESC, uid DESC` over the ascending (completion_time, uid) indexes, a row comparison
after a cursor): PostgreSQL cannot read `DESC NULLS LAST` from an ascending index and sorted the whole
table for every page (72 ms at 100,000 runs; 0.4 ms now). Filter values reach SQL only as bound
parameters.

The reader's connections are in autocommit: a SELECT opens no transaction, so a connection goes back to
the pool without a ROLLBACK, and none is pinged before use (a round trip each on PostgreSQL); a query
that finds its connection dead is tried once more on a fresh one. On PostgreSQL the hot reads (a run by
its name, one namespace's or every namespace's cost sum) skip SQLAlchemy's engine: see
`jesus.records.direct_postgres`.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal

import psycopg
from sqlalchemy import (
    ColumnElement,
    Select,
    bindparam,
    create_engine,
    desc,
    distinct,
    exists,
    func,
    literal,
    select,
    tuple_,
    union,
)
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from jesus.logic.clock import parse_time
from jesus.logic.run_queries import AuditFilter, GroupBy, RunFilter, TimeRange
from jesus.records.direct_postgres import CompiledQuery, DirectConnections
from jesus.records.schema import audit_log, run_calls, runs
from jesus.records.store import StoreUnavailableError
from jesus.records.urls import describe

Visible = Collection[str] | None
"""The namespaces a caller may read; None: all of them."""

_SUMMARY = (
    runs.c.uid,
    runs.c.namespace,
    runs.c.name,
    runs.c.phase,
    runs.c.team,
    runs.c.owner_user,
    runs.c.created,
    runs.c.start_time,
    runs.c.completion_time,
    runs.c.spec_digest,
    runs.c.trace_id,
    runs.c.cost_micros,
    runs.c.input_tokens,
    runs.c.output_tokens,
    runs.c.attempts,
    runs.c.archived_at,
)


@dataclass(frozen=True)
class RunSummary:
    """One archived run as a list shows it (its columns, not its whole record)."""

    uid: str
    namespace: str
    name: str
    phase: str
    team: str
    user: str
    created: str | None
    start_time: str | None
    completion_time: str | None
    spec_digest: str
    trace_id: str | None
    cost_micros: int
    input_tokens: int
    output_tokens: int
    attempts: int
    archived_at: str

    @property
    def position(self) -> list[Any]:
        """Its place in a list: what a cursor after it holds."""
        return [self.completion_time, self.uid]


@dataclass(frozen=True)
class FoundRun:
    """One archived run and its whole record, as the archive's JSON text (parsed when asked for)."""

    summary: RunSummary
    record_json: str

    @cached_property
    def record(self) -> Any:
        """The record, parsed."""
        return json.loads(self.record_json)

    @property
    def record_chars(self) -> int:
        """The size of the record's JSON text."""
        return len(self.record_json)


@dataclass(frozen=True)
class CallSummary:
    """One model call of an archived run."""

    index: int
    adapter: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_micros: int
    duration_milliseconds: int | None
    fallbacks: list[dict[str, str]]


@dataclass(frozen=True)
class CostLine:
    """The sums of one group in a cost report."""

    key: str
    runs: int
    calls: int | None
    """None when grouped by team or user (counted only per model and adapter)."""
    input_tokens: int
    output_tokens: int
    cost_micros: int


@dataclass(frozen=True)
class CostPoint:
    """One group's spend on one day (UTC), for a chart over time."""

    day: str
    """YYYY-MM-DD"""
    key: str
    cost_micros: int


@dataclass(frozen=True)
class AuditEntry:
    """One audit row as the API shows it (hashes included, so a reader can check the chain)."""

    id: int
    recorded_at: str
    action: str
    namespace: str
    name: str
    run_uid: str
    at: str
    detail: Any
    prev_hash: str
    hash: str


_TRANSIENT = (
    OperationalError,
    InterfaceError,
    OSError,
    DBAPIError,
    psycopg.OperationalError,  # the hot reads on PostgreSQL, straight on psycopg
    psycopg.InterfaceError,
)


def _summary(row: Sequence[Any]) -> RunSummary:
    """A run from the `_SUMMARY` columns, by position (SQLAlchemy's rows and psycopg's tuples alike)."""
    (uid, namespace, name, phase, team, user, created, start, completion, digest, trace) = row[:11]
    return RunSummary(
        uid=uid,
        namespace=namespace,
        name=name,
        phase=phase,
        team=team,
        user=user,
        created=created,
        start_time=start,
        completion_time=completion,
        spec_digest=digest,
        trace_id=trace,
        cost_micros=int(row[11]),
        input_tokens=int(row[12]),
        output_tokens=int(row[13]),
        attempts=int(row[14]),
        archived_at=row[15],
    )


_RECORD = len(_SUMMARY)
"""The position of the record after the `_SUMMARY` columns in `_run_query`'s rows."""


def _in_window(window: TimeRange) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if window.start is not None:
        where.append(runs.c.completion_time >= window.start)
    if window.end is not None:
        where.append(runs.c.completion_time < window.end)
    return where


def _namespaces(column: Any, visible: Visible, asked: str | None) -> list[ColumnElement[bool]] | None:
    """The namespace conditions, or None when nothing can match (asked for one the caller may not read,
    or the caller may read none)."""
    if asked is not None:
        if visible is not None and asked not in visible:
            return None
        return [column == asked]
    if visible is None:
        return []
    if not visible:
        return None
    return [column.in_(sorted(visible))]


def _after(
    position: Sequence[Any] | None,
) -> tuple[list[ColumnElement[bool]] | None, list[ColumnElement[bool]]]:
    """The conditions of the rows after `position` in newest-first order: (those with a completion
    time, those without; None: no such rows). Rows without a completion time come last."""
    if position is None:
        return [runs.c.completion_time.is_not(None)], [runs.c.completion_time.is_(None)]
    completion, uid = position
    if completion is None:
        return None, [runs.c.completion_time.is_(None), runs.c.uid < uid]
    # A row comparison: both databases seek to it in the (completion_time, uid) index.
    return [tuple_(runs.c.completion_time, runs.c.uid) < (completion, uid)], [
        runs.c.completion_time.is_(None)
    ]


QUICK_COST_SPAN = timedelta(days=8)
"""A cost sum of one namespace over at most this long is a quick read (a week of one namespace: about
400 runs of the 100,000 of bench_read_api, 0.2 to 0.6 ms on SQLite)."""


def quick_cost_sum(window: TimeRange, shown: list[str] | None) -> bool:
    """Whether the cost sum over `window` of the namespaces `shown` (None: all) is a quick read."""
    if shown is None or len(shown) != 1 or window.start is None or window.end is None:
        return False
    return parse_time(window.end) - parse_time(window.start) <= QUICK_COST_SPAN


def _namespace_values(visible: Visible, asked: str | None) -> list[str] | None:
    """The namespaces a query may read, as bound values: None for all of them, [] for none."""
    if asked is not None:
        return [] if visible is not None and asked not in visible else [asked]
    return None if visible is None else sorted(visible)


# The hot queries are built once per shape, with bound parameters, and kept: building one (the clauses,
# their coercions) and its cache key cost more CPU than SQLite's reading of a week of one namespace.


@functools.cache
def _run_query(by_uid: bool) -> Select[Any]:
    """The runs of one name with their records (`:namespace`, `:name`, and `:uid` when `by_uid`)."""
    where = [runs.c.namespace == bindparam("namespace"), runs.c.name == bindparam("name")]
    if by_uid:
        where.append(runs.c.uid == bindparam("uid"))
    return select(*_SUMMARY, runs.c.record).where(*where)


Namespaces = Literal["all", "one", "some"]
"""Which namespaces a cost sum reads: every one, `:namespace`, or the list `:namespaces`."""


@functools.cache
def _cost_query(group_by: GroupBy, namespaces: Namespaces, start: bool, end: bool) -> Select[Any]:
    """The sums per group (`key, runs, calls, input_tokens, output_tokens, cost_micros`) of the
    `namespaces`, `:start` and `:end` as given."""
    if group_by in (GroupBy.TEAM, GroupBy.USER):
        key = runs.c.team if group_by is GroupBy.TEAM else runs.c.owner_user
        # One scan of runs, no calls table: a team's or a user's call count is not summed (None).
        columns: tuple[Any, ...] = (
            key.label("key"),
            func.count().label("runs"),
            literal(None).label("calls"),
            func.sum(runs.c.input_tokens).label("input_tokens"),
            func.sum(runs.c.output_tokens).label("output_tokens"),
            func.sum(runs.c.cost_micros).label("cost_micros"),
        )
        table = runs
    else:
        # The calls carry their run's namespace and completion time: one table, one index.
        key = run_calls.c.model if group_by is GroupBy.MODEL else run_calls.c.adapter
        columns = (
            key.label("key"),
            func.count(distinct(run_calls.c.run_uid)).label("runs"),
            func.count().label("calls"),
            func.sum(run_calls.c.input_tokens).label("input_tokens"),
            func.sum(run_calls.c.output_tokens).label("output_tokens"),
            func.sum(run_calls.c.cost_micros).label("cost_micros"),
        )
        table = run_calls
    where: list[ColumnElement[bool]] = []
    if namespaces == "one":
        # Not an expanding IN of one: a plain parameter compiles to one text, which psycopg can prepare.
        where.append(table.c.namespace == bindparam("namespace"))
    elif namespaces == "some":
        where.append(table.c.namespace.in_(bindparam("namespaces", expanding=True)))
    if start:
        where.append(table.c.completion_time >= bindparam("start"))
    if end:
        where.append(table.c.completion_time < bindparam("end"))
    return select(*columns).where(*where).group_by(key).order_by(desc("cost_micros"), key)


class ArchiveReader:
    """Read-only queries over one archive database."""

    def __init__(self, url: URL, *, pool_size: int = 8) -> None:
        self.url = url
        self._sqlite: Engine | None = None
        self._inline = True
        self._threads: ThreadPoolExecutor | None = None
        self._direct: DirectConnections | None = None
        self._compiled: dict[Select[Any], CompiledQuery] = {}
        if url.get_backend_name() == "sqlite":
            # SQLite runs in this process: a query is one hop to a thread of our own, which runs the
            # driver's calls (execute, fetch, close) in one go. aiosqlite made each of them a hop of its
            # own and cost 1.3 to 2 ms of CPU a query with 25 at once, against 0.2 to 0.4 ms this way.
            sync_url = url.set(drivername="sqlite")
            if url.database in (None, "", ":memory:"):
                self._sqlite = create_engine(
                    sync_url, poolclass=StaticPool, connect_args={"check_same_thread": False}
                )
                pool_size = 1  # one connection, one database
                self._inline = False  # that one connection is used by one thread only
            else:
                self._sqlite = create_engine(
                    sync_url,
                    isolation_level="AUTOCOMMIT",
                    pool_reset_on_return=None,
                    pool_size=pool_size,
                    max_overflow=0,
                )
            self._threads = ThreadPoolExecutor(pool_size, thread_name_prefix="archive-reader")
        else:
            self.engine: AsyncEngine = create_async_engine(
                url,
                isolation_level="AUTOCOMMIT",
                pool_reset_on_return=None,
                pool_size=pool_size,
                max_overflow=0,
            )
            # The hot reads (see `_all`'s `direct`) skip SQLAlchemy, on as many connections again: at
            # most 2 * pool_size to the database per process (16 by default), what max_connections
            # must allow for each API worker and replica.
            self._direct = DirectConnections(url, pool_size)

    def __str__(self) -> str:
        return describe(self.url)

    async def close(self) -> None:
        """Close the pool's connections."""
        if self._sqlite is not None and self._threads is not None:
            self._threads.shutdown(wait=True)
            self._sqlite.dispose()
        else:
            await self.engine.dispose()
        if self._direct is not None:
            await self._direct.close()

    async def _all(
        self,
        query: Select[Any],
        values: Mapping[str, Any] | None = None,
        *,
        quick: bool = False,
        direct: bool = False,
    ) -> Sequence[Any]:
        """The rows of `query`; `quick`: a read of a few index entries (see `_rows`); `direct`: a
        statement built once, without an expanding parameter, that PostgreSQL runs straight on psycopg
        (`jesus.records.direct_postgres`). Read the rows by position: psycopg's are plain tuples."""
        try:
            if direct and self._direct is not None:
                compiled = self._compiled.get(query)
                if compiled is None:
                    compiled = self._compiled[query] = CompiledQuery(query, self.engine.dialect)
                return await self._direct.rows(compiled, values)
            try:
                return await self._rows(query, values, quick)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # A pooled connection the database had closed (a restart, an idle timeout): the pool
                # has dropped it and its elders; one more try gets a fresh one.
                return await self._rows(query, values, quick)
        except _TRANSIENT as exc:
            original = getattr(exc, "orig", None) or exc
            why = " ".join(f"{type(original).__name__}: {original}".split())[:300]
            raise StoreUnavailableError(f"failed to read the archive {self}: {why}") from exc

    async def _rows(self, query: Select[Any], values: Mapping[str, Any] | None, quick: bool) -> Sequence[Any]:
        if self._sqlite is not None:
            if quick and self._inline:
                # SQLite answers a quick read in less CPU than the hop to a thread and back costs
                # (0.5 to 0.8 ms: a run's detail took 1.16 ms of CPU with it, 0.34 ms without), so it
                # runs here, holding the event loop about as long as the hop would.
                return self._sqlite_rows(query, values)
            return await asyncio.get_running_loop().run_in_executor(
                self._threads, self._sqlite_rows, query, values
            )
        async with self.engine.connect() as connection:
            rows: Sequence[Any] = (await connection.execute(query, values)).all()
            return rows

    def _sqlite_rows(self, query: Select[Any], values: Mapping[str, Any] | None) -> Sequence[Any]:
        assert self._sqlite is not None
        with self._sqlite.connect() as connection:
            return connection.execute(query, values).all()

    async def namespaces(self) -> list[str]:
        """Every namespace with an archived run or an audit row."""
        query = union(select(runs.c.namespace).distinct(), select(audit_log.c.namespace).distinct())
        rows = await self._all(select(query.subquery().c[0]))
        return sorted(str(row[0]) for row in rows)

    async def list_runs(
        self, question: RunFilter, visible: Visible, after: Sequence[Any] | None, limit: int
    ) -> list[RunSummary]:
        """Up to `limit` runs matching `question` after `after`, newest first."""
        where = _namespaces(runs.c.namespace, visible, question.namespace)
        if where is None:
            return []
        for column, value in (
            (runs.c.team, question.team),
            (runs.c.owner_user, question.user),
            (runs.c.phase, question.phase),
        ):
            if value is not None:
                where.append(column == value)
        if question.search is not None:
            where.append(runs.c.name.contains(question.search, autoescape=True))
        if question.model is not None:
            where.append(
                exists().where(run_calls.c.run_uid == runs.c.uid, run_calls.c.model == question.model)
            )
        where += _in_window(question.window)
        timed, untimed = _after(after)
        # Without filters beyond the namespace and the window, a page is a walk of `limit` entries of an
        # index; a filter may have it read far (a rare phase, a name's part).
        quick = all(
            value is None
            for value in (question.team, question.user, question.phase, question.model, question.search)
        )
        found = []
        if timed is not None:
            found = [
                _summary(row)
                for row in await self._all(
                    select(*_SUMMARY)
                    .where(*where, *timed)
                    .order_by(runs.c.completion_time.desc(), runs.c.uid.desc())
                    .limit(limit),
                    quick=quick,
                )
            ]
        if len(found) < limit and question.window.start is None and question.window.end is None:
            # The runs without a completion time, last (a time window leaves them out anyway).
            found += [
                _summary(row)
                for row in await self._all(
                    select(*_SUMMARY)
                    .where(*where, *untimed)
                    .order_by(runs.c.uid.desc())
                    .limit(limit - len(found)),
                    quick=quick,
                )
            ]
        return found

    async def get_run(
        self, namespace: str, name: str, visible: Visible, uid: str | None = None
    ) -> tuple[RunSummary, Any] | None:
        """The newest archived run of this name (or the one of `uid`) and its whole record; None when
        there is none the caller may read."""
        found = await self.find_run(namespace, name, visible, uid)
        return None if found is None else (found.summary, found.record)

    async def find_run(
        self, namespace: str, name: str, visible: Visible, uid: str | None = None
    ) -> FoundRun | None:
        """As `get_run`, with the size of the record."""
        if visible is not None and namespace not in visible:
            return None
        values = {"namespace": namespace, "name": name}
        if uid is not None:
            values["uid"] = uid
        # Every run of the name (a handful at most, by the namespace-name index) with its record, in one
        # round trip; the newest chosen here: an ORDER BY would tempt SQLite into walking the
        # completion-time index instead.
        rows = await self._all(_run_query(uid is not None), values, quick=True, direct=True)
        if not rows:
            return None
        # By position: completion time 8, UID 0.
        newest = max(rows, key=lambda row: (row[8] is not None, row[8] or "", row[0]))
        return FoundRun(_summary(newest), newest[_RECORD])

    async def records(self, uids: Sequence[str]) -> dict[str, Any]:
        """The whole records of the runs `uids` (the caller has listed them first), by UID."""
        found: dict[str, Any] = {}
        for first in range(0, len(uids), 500):  # bound the IN list
            rows = await self._all(
                select(runs.c.uid, runs.c.record).where(runs.c.uid.in_(uids[first : first + 500]))
            )
            found.update((row.uid, json.loads(row.record)) for row in rows)
        return found

    async def calls(self, uid: str) -> list[CallSummary]:
        """The model calls of the run `uid`, in order (the caller has found the run first)."""
        query = select(run_calls).where(run_calls.c.run_uid == uid).order_by(run_calls.c.call_index)
        return [
            CallSummary(
                index=int(row.call_index),
                adapter=row.adapter,
                model=row.model,
                input_tokens=int(row.input_tokens),
                output_tokens=int(row.output_tokens),
                cost_micros=int(row.cost_micros),
                duration_milliseconds=row.duration_milliseconds,
                fallbacks=json.loads(row.fallbacks),
            )
            for row in await self._all(query, quick=True)
        ]

    async def costs(
        self, group_by: GroupBy, window: TimeRange, visible: Visible, namespace: str | None = None
    ) -> list[CostLine]:
        """Spend per team, user, model or adapter of the runs completed in `window`, largest first."""
        shown = _namespace_values(visible, namespace)
        if shown is not None and not shown:
            return []
        values: dict[str, Any] = {"start": window.start, "end": window.end}
        namespaces: Namespaces = "all"
        if shown is not None and len(shown) == 1:
            namespaces, values["namespace"] = "one", shown[0]
        elif shown is not None:
            namespaces, values["namespaces"] = "some", shown
        query = _cost_query(group_by, namespaces, window.start is not None, window.end is not None)
        rows = await self._all(
            query,
            {k: v for k, v in values.items() if v is not None},
            quick=quick_cost_sum(window, shown),
            direct=namespaces != "some",
        )
        return [
            CostLine(
                key=str(key),
                runs=int(runs_),
                calls=None if calls is None else int(calls),
                input_tokens=int(input_tokens or 0),
                output_tokens=int(output_tokens or 0),
                cost_micros=int(cost_micros or 0),
            )
            for key, runs_, calls, input_tokens, output_tokens, cost_micros in rows
        ]

    async def cost_series(
        self, group_by: GroupBy, window: TimeRange, visible: Visible, namespace: str | None = None
    ) -> list[CostPoint]:
        """Spend per day (of completion, UTC) and per team, user, model or adapter of the runs completed
        in `window`, by day then key."""
        table = runs if group_by in (GroupBy.TEAM, GroupBy.USER) else run_calls
        where = _namespaces(table.c.namespace, visible, namespace)
        if where is None:
            return []
        if window.start is not None:
            where.append(table.c.completion_time >= window.start)
        if window.end is not None:
            where.append(table.c.completion_time < window.end)
        key = {
            GroupBy.TEAM: runs.c.team,
            GroupBy.USER: runs.c.owner_user,
            GroupBy.MODEL: run_calls.c.model,
            GroupBy.ADAPTER: run_calls.c.adapter,
        }[group_by]
        # Completion times are stored as RFC 3339 UTC text: the first ten characters are the day.
        day = func.substr(table.c.completion_time, 1, 10).label("day")
        query = (
            select(day, key.label("key"), func.sum(table.c.cost_micros).label("cost_micros"))
            .where(*where, table.c.completion_time.is_not(None))
            .group_by(day, key)
            .order_by(day, key)
        )
        return [
            CostPoint(day=str(row.day), key=str(row.key), cost_micros=int(row.cost_micros or 0))
            for row in await self._all(query)
        ]

    async def audit(
        self, question: AuditFilter, visible: Visible, after_id: int | None, limit: int
    ) -> list[AuditEntry]:
        """Up to `limit` audit rows matching `question` after row `after_id`, oldest first."""
        where = _namespaces(audit_log.c.namespace, visible, question.namespace)
        if where is None:
            return []
        if question.run_uid is not None:
            where.append(audit_log.c.run_uid == question.run_uid)
        if question.action is not None:
            where.append(audit_log.c.action == question.action)
        if after_id is not None:
            where.append(audit_log.c.id > after_id)
        query = select(audit_log).where(*where).order_by(audit_log.c.id).limit(limit)
        entries = []
        for row in await self._all(query):
            try:
                detail: Any = json.loads(row.detail)
            except ValueError:
                detail = {"unreadable": row.detail}
            entries.append(
                AuditEntry(
                    id=int(row.id),
                    recorded_at=row.recorded_at,
                    action=row.action,
                    namespace=row.namespace,
                    name=row.name,
                    run_uid=row.run_uid,
                    at=row.at,
                    detail=detail,
                    prev_hash=row.prev_hash,
                    hash=row.hash,
                )
            )
        return entries


__all__ = [
    "ArchiveReader",
    "AuditEntry",
    "CallSummary",
    "CostLine",
    "CostPoint",
    "FoundRun",
    "RunSummary",
    "Visible",
]
