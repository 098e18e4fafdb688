"""The read API's hot queries on PostgreSQL straight on psycopg's async connections (ADR 0034).

A statement the reader builds once (a run by its namespace and name, one namespace's sum over a week)
is compiled once to psycopg's text with named placeholders, and run on a connection of a small pool of
our own: no SQLAlchemy pool checkout and its events, no greenlet hop per driver call, no result
machinery; the rows come back as plain tuples. psycopg prepares a statement on a connection once it has
run it `PREPARE_THRESHOLD` times, so a hot statement is parsed and planned once per connection. Values
reach PostgreSQL only as bound parameters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from sqlalchemy import Select
from sqlalchemy.engine import URL, Dialect

PREPARE_THRESHOLD = 2
"""Runs of one statement on a connection before psycopg prepares it (psycopg's default is 5)."""

Row = tuple[Any, ...]


class CompiledQuery:
    """A statement as psycopg's text and the default values of its parameters (a literal's)."""

    def __init__(self, query: Select[Any], dialect: Dialect) -> None:
        compiled = query.compile(dialect=dialect)
        self.sql = str(compiled)
        if "__[POSTCOMPILE_" in self.sql:
            raise ValueError(f"a query with an expanding parameter cannot run directly: {self.sql[:200]}")
        self.defaults = dict(compiled.params)

    def values(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The statement's parameters: its defaults with `given` over them."""
        return {**self.defaults, **(given or {})}


class DirectConnections:
    """Up to `size` psycopg connections in autocommit, kept between queries; a connection that fails a
    query is closed, not kept, and a query whose kept connection had died is tried once on a new one."""

    def __init__(self, url: URL, size: int) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._idle: list[psycopg.AsyncConnection[Row]] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def _connect(self) -> psycopg.AsyncConnection[Row]:
        connection = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        connection.prepare_threshold = PREPARE_THRESHOLD
        return connection

    async def rows(self, query: CompiledQuery, values: Mapping[str, Any] | None) -> Sequence[Row]:
        """The rows of `query` with `values`."""
        async with self._slots:
            kept = bool(self._idle)
            connection = self._idle.pop() if kept else await self._connect()
            try:
                rows = await _fetch(connection, query, values)
            except psycopg.OperationalError:
                broken = connection.broken  # closing clears it
                await connection.close()
                if not (kept and broken):
                    raise
            except BaseException:
                # Failed or cancelled half-way: its state is unknown, so it is not kept.
                await connection.close()
                raise
            else:
                await self._keep(connection)
                return rows
            # The database had closed a kept connection (a restart, an idle timeout): its elders are
            # likely dead too, so they go, and one more try gets a fresh connection.
            await self._drop_idle()
            connection = await self._connect()
            try:
                rows = await _fetch(connection, query, values)
            except BaseException:
                await connection.close()
                raise
            await self._keep(connection)
            return rows

    async def _keep(self, connection: psycopg.AsyncConnection[Row]) -> None:
        if self._closed:
            await connection.close()
        else:
            self._idle.append(connection)

    async def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()

    async def close(self) -> None:
        """Close the kept connections; one in use is closed when its query ends."""
        self._closed = True
        await self._drop_idle()


async def _fetch(
    connection: psycopg.AsyncConnection[Row], query: CompiledQuery, values: Mapping[str, Any] | None
) -> Sequence[Row]:
    cursor = await connection.execute(query.sql, query.values(values))
    return await cursor.fetchall()


__all__ = ["PREPARE_THRESHOLD", "CompiledQuery", "DirectConnections"]
