"""The hot reads on PostgreSQL straight on psycopg (`jesus.records.direct_postgres`): the same answers as
through SQLAlchemy, hostile names only ever parameters, statements prepared, and connections that died
or were left half-way never used again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import bindparam, func, select
from tests.builders.archived_runs import archive, archived_run, standard_runs
from tests.builders.postgres_server import PostgresServer

from jesus.logic.run_queries import GroupBy, TimeRange
from jesus.records import RecordStore, StoreUnavailableError, database_url
from jesus.records.direct_postgres import PREPARE_THRESHOLD, CompiledQuery, DirectConnections
from jesus.records.reader import ArchiveReader

HOSTILE = [
    "x' OR '1'='1",
    "m'; DROP TABLE runs; --",
    "%s %(name)s %% \\ $1 ::text",
    "名前-😀-ñ",
]
WEEK = TimeRange("2026-11-27T00:00:00Z", "2026-12-04T00:00:00Z")


@pytest.fixture
async def store(postgres: PostgresServer) -> AsyncIterator[RecordStore]:
    records = RecordStore(database_url(postgres.create_database()))
    await records.migrate()
    try:
        yield records
    finally:
        await records.close()


@pytest.fixture
async def reader(store: RecordStore) -> AsyncIterator[ArchiveReader]:
    archive_reader = ArchiveReader(store.url)
    try:
        yield archive_reader
    finally:
        await archive_reader.close()


async def test_the_direct_reads_answer_as_sqlalchemy_does_hostile_text_included(
    store: RecordStore, reader: ArchiveReader
) -> None:
    hostile_runs = [
        # A run's name is a Kubernetes name; its user and model are free text.
        archived_run(f"h{n}", namespace="team-h", user=text, model=text, completion=f"2026-11-30T10:0{n}:00Z")
        for n, text in enumerate(HOSTILE)
    ]
    await archive(store, *standard_runs(), *hostile_runs)
    direct = reader._direct
    assert direct is not None

    async def answers() -> list[object]:
        found: list[object] = [await reader.find_run("team-a", "a3", None)]
        found.append(await reader.find_run("team-a", "a3", None, uid="other"))
        for text in HOSTILE:  # as a namespace and as a name: nothing matches, nothing breaks
            found += [await reader.find_run(text, "a3", None), await reader.find_run("team-h", text, None)]
        for grouping in GroupBy:
            found.append(await reader.costs(grouping, WEEK, None, "team-h"))
            found.append(await reader.costs(grouping, TimeRange(), None))
            found.append(await reader.costs(grouping, WEEK, None, HOSTILE[0]))
            found.append(await reader.costs(grouping, WEEK, frozenset({"team-a", "team-h"})))  # not direct
        return found

    straight = await answers()
    reader._direct = None  # every read through SQLAlchemy
    try:
        through_sqlalchemy = await answers()
    finally:
        reader._direct = direct
    assert straight == through_sqlalchemy
    for n, text in enumerate(HOSTILE):
        found = await reader.find_run("team-h", f"h{n}", None)
        assert found is not None and found.summary.user == text
        assert found.record["spec"]["owner"]["user"] == text
        assert await reader.find_run("team-h", text, None) is None
    by_user = await reader.costs(GroupBy.USER, WEEK, None, "team-h")
    assert sorted(line.key for line in by_user) == sorted(HOSTILE)
    by_model = await reader.costs(GroupBy.MODEL, WEEK, frozenset({"team-h"}))
    assert sorted((line.key, line.calls) for line in by_model) == sorted((text, 2) for text in HOSTILE)
    assert await store.count_runs() == len(standard_runs()) + len(HOSTILE)


async def test_a_hot_statement_is_prepared_on_its_connection(
    store: RecordStore, reader: ArchiveReader
) -> None:
    await archive(store, *standard_runs())
    for _ in range(PREPARE_THRESHOLD + 1):
        assert await reader.find_run("team-a", "a1", None) is not None
    assert reader._direct is not None
    (connection,) = reader._direct._idle  # one at a time: one connection
    cursor = await connection.execute("SELECT statement FROM pg_prepared_statements")
    assert any("FROM runs" in str(statement) for (statement,) in await cursor.fetchall())


async def test_a_dead_or_cancelled_connection_is_not_used_again(postgres: PostgresServer) -> None:
    url = database_url(postgres.create_database())
    connections = DirectConnections(url, 2)
    sleep = CompiledQuery(select(func.pg_sleep(bindparam("seconds")), bindparam("echo")), url.get_dialect()())
    try:
        # pg_sleep is void: psycopg gives "".
        assert await connections.rows(sleep, {"seconds": 0, "echo": "é'"}) == [("", "é'")]
        (first,) = connections._idle
        asking = asyncio.create_task(connections.rows(sleep, {"seconds": 30, "echo": 1}))
        await asyncio.sleep(0.3)
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        assert connections._idle == [] and first.closed  # its state was unknown: closed, not kept
        assert await connections.rows(sleep, {"seconds": 0, "echo": 2}) == [("", 2)]
        (kept,) = connections._idle
        postgres.stop()
        postgres.start()
        # The kept connection died with the server: the query is tried once on a fresh one.
        assert await connections.rows(sleep, {"seconds": 0, "echo": 3}) == [("", 3)]
        assert kept.closed and connections._idle != [kept]
    finally:
        await connections.close()


async def test_a_direct_read_of_a_stopped_database_names_it(postgres: PostgresServer) -> None:
    store = RecordStore(database_url(postgres.create_database()))
    await store.migrate()
    await archive(store, *standard_runs()[:2])
    reader = ArchiveReader(store.url)
    try:
        assert await reader.find_run("team-a", "a1", None) is not None
        postgres.stop()
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{postgres.port}"):
            await reader.find_run("team-a", "a1", None)
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{postgres.port}"):
            await reader.costs(GroupBy.TEAM, WEEK, None, "team-a")
    finally:
        postgres.start()
        await reader.close()
        await store.close()
