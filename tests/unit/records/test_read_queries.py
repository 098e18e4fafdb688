"""The read API's queries (`ArchiveReader`) on SQLite and on a real PostgreSQL: filters, keyset pages,
namespaces the caller may not read, cost sums, the audit list, hostile filter values."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert
from tests.builders.archived_runs import archive, archived_run, standard_runs
from tests.builders.postgres_server import PostgresServer

from jesus.logic.records import build_run_record
from jesus.logic.run_queries import AuditFilter, GroupBy, RunFilter, TimeRange, parse_run_filter
from jesus.records import RecordStore, StoreUnavailableError, database_url
from jesus.records.reader import ArchiveReader
from jesus.records.schema import run_calls, runs
from jesus.records.store import _call_values, _run_values
from jesus.records.upgrade import migrate


@pytest.fixture
async def reader(store: RecordStore) -> AsyncIterator[ArchiveReader]:
    archive_reader = ArchiveReader(store.url)
    try:
        yield archive_reader
    finally:
        await archive_reader.close()


async def test_runs_are_listed_newest_first_and_filtered(store: RecordStore, reader: ArchiveReader) -> None:
    await archive(store, *standard_runs())
    everything = await reader.list_runs(RunFilter(), None, None, 50)
    assert [r.name for r in everything] == ["b2", "a5", "a4", "a3", "b1", "a2", "a1"]
    assert everything[0].cost_micros == 3000 and everything[0].team == "team-b"

    async def names(question: RunFilter, visible: frozenset[str] | None = None) -> list[str]:
        return [r.name for r in await reader.list_runs(question, visible, None, 50)]

    assert await names(RunFilter(namespace="team-a")) == ["a5", "a4", "a3", "a2", "a1"]
    assert await names(RunFilter(user="bob@example.com")) == ["a2"]
    assert await names(RunFilter(phase="Failed")) == ["a4"]
    assert await names(RunFilter(model="m-large")) == ["b2", "a3"]
    assert await names(RunFilter(team="team-b")) == ["b2", "b1"]
    window = TimeRange("2026-11-30T10:02:00Z", "2026-11-30T10:04:00Z")  # from inclusive, to exclusive
    assert await names(RunFilter(window=window)) == ["a3", "b1", "a2"]
    # What the caller may read bounds everything, a namespace filter included.
    assert await names(RunFilter(), frozenset({"team-b"})) == ["b2", "b1"]
    assert await names(RunFilter(namespace="team-a"), frozenset({"team-b"})) == []
    assert await names(RunFilter(), frozenset()) == []


async def test_keyset_pages_cover_every_run_once_even_with_equal_times(
    store: RecordStore, reader: ArchiveReader
) -> None:
    # Twelve runs in one second (equal completion times) and one without a completion time.
    same = [archived_run(f"s{i:02d}", completion="2026-11-30T10:00:00Z") for i in range(12)]
    written = await archive(store, *same, archived_run("late", completion="2026-11-30T11:00:00Z"))
    seen: list[str] = []
    after = None
    while True:
        page = await reader.list_runs(RunFilter(), None, after, 5)
        seen += [r.uid for r in page]
        if len(page) < 5:
            break
        after = page[-1].position
    assert len(seen) == len(set(seen)) == 13
    assert set(seen) == {w.uid for w in written}
    assert seen[0] == written[-1].uid  # the newest first
    # A run archived meanwhile, older than the page, is not skipped or repeated by the next page.
    first = await reader.list_runs(RunFilter(), None, None, 3)
    (await archive(store, archived_run("newer", completion="2026-11-30T12:00:00Z")))
    rest = await reader.list_runs(RunFilter(), None, first[-1].position, 50)
    assert {r.uid for r in first}.isdisjoint(r.uid for r in rest)
    assert len(first) + len(rest) == 13


async def test_a_run_without_a_completion_time_is_listed_last_and_paged(
    store: RecordStore, reader: ArchiveReader
) -> None:
    facts, obj = archived_run("undated")
    del obj["status"]["completionTime"]
    await archive(store, (facts, obj), archived_run("dated"))
    runs = await reader.list_runs(RunFilter(), None, None, 1)
    assert [r.name for r in runs] == ["dated"]
    rest = await reader.list_runs(RunFilter(), None, runs[-1].position, 5)
    assert [r.name for r in rest] == ["undated"]
    assert await reader.list_runs(RunFilter(), None, rest[-1].position, 5) == []


async def test_one_run_its_record_and_calls(store: RecordStore, reader: ArchiveReader) -> None:
    await archive(store, *standard_runs())
    found = await reader.get_run("team-a", "a3", None)
    assert found is not None
    summary, record = found
    assert (summary.name, summary.cost_micros, summary.input_tokens) == ("a3", 4500, 303)
    assert record["spec"]["owner"]["team"] == "team-a" and record["kind"] == "AgentRun"
    calls = await reader.calls(summary.uid)
    assert [(c.index, c.adapter, c.model) for c in calls] == [
        (0, "backup", "m-large"),
        (1, "primary", "m-large"),
        (2, "primary", "m-large"),
    ]
    assert calls[0].fallbacks == [{"adapter": "primary", "errorClass": "RateLimited"}]
    assert await reader.get_run("team-a", "a3", frozenset({"team-b"})) is None
    both = await reader.records([summary.uid, "no-such-uid"])
    assert list(both) == [summary.uid] and both[summary.uid] == record
    assert await reader.get_run("team-a", "nope", None) is None
    assert await reader.get_run("team-a", "a3", None, uid="other") is None


async def test_the_newest_of_two_runs_of_one_name_unless_a_uid_is_asked(
    store: RecordStore, reader: ArchiveReader
) -> None:
    old, new = await archive(
        store,
        archived_run("again", completion="2026-11-30T10:00:00Z", calls=1),
        archived_run("again", completion="2026-11-30T11:00:00Z", calls=2),
    )
    newest = await reader.get_run("team-a", "again", None)
    assert newest is not None and newest[0].uid == new.uid
    older = await reader.get_run("team-a", "again", None, uid=old.uid)
    assert older is not None and older[0].cost_micros == 1500


async def test_costs_are_summed_per_team_user_model_and_adapter(
    store: RecordStore, reader: ArchiveReader
) -> None:
    runs = await archive(store, *standard_runs())
    total = sum(r.cost_micros for r in runs)
    everything = TimeRange()

    by_team = await reader.costs(GroupBy.TEAM, everything, None)
    assert [(g.key, g.runs, g.cost_micros, g.calls) for g in by_team] == [
        ("team-a", 5, 1500 * 8, None),
        ("team-b", 2, 1500 * 4, None),
    ]
    by_model = await reader.costs(GroupBy.MODEL, everything, None)
    assert [(g.key, g.runs, g.calls, g.cost_micros) for g in by_model] == [
        ("m-small", 4, 7, 1500 * 7),
        ("m-large", 2, 5, 1500 * 5),
    ]
    assert sum(g.cost_micros for g in by_model) == total
    by_adapter = await reader.costs(GroupBy.ADAPTER, everything, frozenset({"team-b"}))
    assert [(g.key, g.calls) for g in by_adapter] == [("backup", 2), ("primary", 2)]  # equal: by name
    assert sum(g.cost_micros for g in by_adapter) == 1500 * 4
    by_user = await reader.costs(
        GroupBy.USER, TimeRange("2026-11-30T10:02:00Z", "2026-11-30T10:03:00Z"), None
    )
    assert {(g.key, g.runs) for g in by_user} == {("bob@example.com", 1), ("eve@example.com", 1)}
    assert await reader.costs(GroupBy.TEAM, everything, frozenset()) == []


async def test_a_week_of_one_namespace_sums_as_the_same_window_read_whole(
    store: RecordStore, reader: ArchiveReader
) -> None:
    # One namespace's week is a quick read (on SQLite, on the event loop) and a month of two namespaces
    # is not: the sums of team-a are the same either way, for every grouping.
    await archive(store, *standard_runs())
    week = TimeRange("2026-11-27T00:00:00Z", "2026-12-04T00:00:00Z")
    month = TimeRange("2026-11-04T00:00:00Z", "2026-12-04T00:00:00Z")
    for grouping in GroupBy:
        quick = await reader.costs(grouping, week, frozenset({"team-a"}))
        assert sum(g.cost_micros for g in quick) == 1500 * 8, grouping  # every call of team-a
        whole = await reader.costs(grouping, month, None, "team-a")
        assert quick == whole == await reader.costs(grouping, week, None, "team-a"), grouping
        assert await reader.costs(grouping, week, frozenset({"team-b"}), "team-a") == [], grouping
    assert await reader.find_run("team-a", "a1", frozenset({"team-b"})) is None


async def test_hostile_filter_values_are_only_ever_compared(
    store: RecordStore, reader: ArchiveReader
) -> None:
    hostile = "x' OR '1'='1"
    await archive(store, archived_run("quiet", user=hostile, model="m'; DROP TABLE runs; --"))
    assert [r.name for r in await reader.list_runs(RunFilter(user=hostile), None, None, 5)] == ["quiet"]
    assert await reader.list_runs(RunFilter(user="x' OR 1=1 --"), None, None, 5) == []
    assert [r.name for r in await reader.list_runs(RunFilter(model="m'; DROP TABLE runs; --"), None, None, 5)]
    assert await store.count_runs() == 1
    with pytest.raises(Exception, match="namespace"):
        parse_run_filter(namespace="team-a' OR 1=1")


async def test_audit_rows_follow_the_namespaces_and_page_by_id(
    store: RecordStore, reader: ArchiveReader
) -> None:
    runs = await archive(store, *standard_runs())
    rows = await reader.audit(AuditFilter(), None, None, 100)
    assert [r.id for r in rows] == list(range(1, len(runs) + 1))
    assert all(r.action == "archive" for r in rows)
    assert rows[1].prev_hash == rows[0].hash
    team_b = await reader.audit(AuditFilter(), frozenset({"team-b"}), None, 100)
    assert [r.name for r in team_b] == ["b1", "b2"]
    after = await reader.audit(AuditFilter(), None, 3, 2)
    assert [r.id for r in after] == [4, 5]
    mine = await reader.audit(AuditFilter(run_uid=runs[0].uid), None, None, 10)
    assert [r.name for r in mine] == ["a1"]
    assert await reader.namespaces() == ["team-a", "team-b"]


async def test_migration_0002_gives_calls_archived_before_it_their_runs_namespace_and_time(
    database: str,
) -> None:
    store = RecordStore(database_url(database))
    try:
        await migrate(store.engine, "0001")
        facts, obj = archived_run("before", completion="2026-11-30T10:00:00Z", calls=2, model="m-old")
        record = build_run_record(obj)
        async with store.engine.begin() as connection:  # written as the operator of revision 0001 wrote
            await connection.execute(insert(runs), _run_values(record, "2026-12-01T00:00:00Z"))
            old_columns = [{k: v for k, v in c.items() if k not in ("namespace", "completion_time")}
                           for c in _call_values(record)]  # fmt: skip
            await connection.execute(insert(run_calls), old_columns)
        await store.migrate()
        reader = ArchiveReader(store.url)
        try:
            by_model = await reader.costs(
                GroupBy.MODEL, TimeRange("2026-11-30T00:00:00Z", None), frozenset({"team-a"})
            )
            assert [(g.key, g.runs, g.calls, g.cost_micros) for g in by_model] == [
                ("m-old", 1, 2, facts.cost_micros)
            ]
        finally:
            await reader.close()
    finally:
        await store.close()


async def test_a_search_finds_a_part_of_the_name_and_its_wildcards_are_only_text(
    store: RecordStore, reader: ArchiveReader
) -> None:
    await archive(
        store,
        *standard_runs(),
        archived_run("report-q3", completion="2026-11-30T11:00:00Z"),
        archived_run("reportxq3", completion="2026-11-30T11:01:00Z"),
    )

    async def names(search: str) -> list[str]:
        return [r.name for r in await reader.list_runs(parse_run_filter(search=search), None, None, 50)]

    assert await names("report") == ["reportxq3", "report-q3"]
    assert await names("  REPORT-Q ") == ["report-q3"]  # a careless case and spaces
    assert await names("a") == ["a5", "a4", "a3", "a2", "a1"]
    # LIKE's wildcards are matched as themselves (escaped), never as patterns.
    assert await reader.list_runs(RunFilter(search="rep_rt"), None, None, 50) == []
    assert await reader.list_runs(RunFilter(search="%"), None, None, 50) == []
    team_b = await reader.list_runs(RunFilter(search="2"), frozenset({"team-b"}), None, 50)
    assert [r.name for r in team_b] == ["b2"]


async def test_the_cost_series_sums_each_day_per_group(store: RecordStore, reader: ArchiveReader) -> None:
    await archive(
        store,
        archived_run("d1", completion="2026-11-29T23:59:59Z", calls=1),
        archived_run("d2", completion="2026-11-30T00:00:00Z", calls=2),
        archived_run("d3", completion="2026-11-30T12:00:00Z", calls=3, model="m-large"),
        archived_run("e1", namespace="team-b", completion="2026-11-30T01:00:00Z", calls=1),
        archived_run("old", completion="2026-11-01T00:00:00Z", calls=1),
    )
    window = TimeRange("2026-11-29T00:00:00Z", "2026-12-01T00:00:00Z")
    teams = await reader.cost_series(GroupBy.TEAM, window, None)
    assert [(p.day, p.key, p.cost_micros) for p in teams] == [
        ("2026-11-29", "team-a", 1500),
        ("2026-11-30", "team-a", 7500),
        ("2026-11-30", "team-b", 1500),
    ]
    models = await reader.cost_series(GroupBy.MODEL, window, frozenset({"team-a"}))
    assert [(p.day, p.key, p.cost_micros) for p in models] == [
        ("2026-11-29", "m-small", 1500),
        ("2026-11-30", "m-large", 4500),
        ("2026-11-30", "m-small", 3000),
    ]
    assert await reader.cost_series(GroupBy.ADAPTER, window, frozenset()) == []
    assert await reader.cost_series(GroupBy.USER, window, frozenset({"team-a"}), "team-b") == []


async def test_a_reader_whose_postgres_restarted_answers_on_a_fresh_connection(
    postgres: PostgresServer,
) -> None:
    store = RecordStore(database_url(postgres.create_database()))
    await store.migrate()
    await archive(store, *standard_runs()[:2])
    reader = ArchiveReader(store.url)
    try:
        assert len(await reader.list_runs(parse_run_filter(), None, None, 10)) == 2  # a pooled connection
        postgres.stop()
        postgres.start()
        # No ping before each query: the dead connection fails it, and it is tried once on a new one.
        assert len(await reader.list_runs(parse_run_filter(), None, None, 10)) == 2
        postgres.stop()
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{postgres.port}"):
            await reader.list_runs(parse_run_filter(), None, None, 10)
    finally:
        postgres.start()
        await reader.close()
        await store.close()
