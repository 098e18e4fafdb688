"""The archive on SQLite and on a real PostgreSQL: migrations, idempotent writes of finished runs, the
audit chain under concurrent appenders, hostile text, a writer killed mid-transaction, a database that
goes away."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.builders.postgres_server import PostgresServer
from tests.builders.records import decision, finished_run

from jesus.logic.records import DecisionAction, build_run_record
from jesus.records import (
    RecordRefusedError,
    RecordStore,
    StoreUnavailableError,
    database_url,
    schema_differences,
)
from jesus.records.schema import audit_log, run_calls, runs
from jesus.records.upgrade import current_revision

NOW = "2026-12-01T00:00:00Z"


async def count(store: RecordStore, table: object) -> int:
    async with store.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_migrations_build_exactly_the_models_schema_from_empty(store: RecordStore) -> None:
    assert await current_revision(store.engine) == "0004"
    assert await schema_differences(store.engine) == []
    await store.migrate()  # again: nothing to do, nothing breaks
    assert await current_revision(store.engine) == "0004"


async def test_an_empty_database_has_no_revision(database: str) -> None:
    store = RecordStore(database_url(database))
    try:
        assert await current_revision(store.engine) is None
    finally:
        await store.close()


async def test_a_finished_run_is_written_once_with_its_calls_and_audit_rows(store: RecordStore) -> None:
    obj = finished_run("r1", calls=3)
    record = build_run_record(obj)
    history = [decision(record.uid, DecisionAction.ADMIT)]
    assert await store.archive_run(record, history, NOW) is True
    assert await store.archive_run(record, history, NOW) is False  # the same UID: nothing changes
    assert await store.archive_run(build_run_record(obj), [], "2026-12-02T00:00:00Z") is False
    assert await count(store, runs) == 1
    assert await count(store, run_calls) == 3
    assert await count(store, audit_log) == 2  # the admit, then the archive write itself
    async with store.engine.connect() as connection:
        row = (await connection.execute(select(runs).where(runs.c.uid == record.uid))).one()
        calls = (await connection.execute(select(run_calls).order_by(run_calls.c.call_index))).all()
        actions = (await connection.execute(select(audit_log.c.action).order_by(audit_log.c.id))).scalars()
        assert list(actions) == ["admit", "archive"]
    assert (row.phase, row.cost_micros, row.input_tokens, row.archived_at) == ("Succeeded", 4500, 303, NOW)
    assert json.loads(row.record)["spec"] == obj["spec"]
    assert json.loads(calls[0].fallbacks) == [{"adapter": "primary", "errorClass": "RateLimited"}]
    assert [c.adapter for c in calls] == ["backup", "primary", "primary"]
    assert await store.is_archived(record.uid)
    assert (await store.verify()).broken is None


async def test_hostile_and_huge_text_is_archived_alike_on_both_backends(store: RecordStore) -> None:
    message = ("nul\x00 ✓ ünïcode 🚀 \ud800 ' \"; DROP TABLE runs; --" * 100)[:4096]
    obj = finished_run("hostile", message=message, calls=1000)
    obj["spec"]["task"]["instructions"] = "x\x00y" + "z" * 65_000
    record = build_run_record(obj)
    assert await store.archive_run(record, [], NOW)
    async with store.engine.connect() as connection:
        stored = json.loads((await connection.execute(select(runs.c.record))).scalar_one())
    assert stored["status"]["message"] == message.replace("\x00", "\ufffd").replace("\ud800", "\ufffd")
    assert stored["spec"]["task"]["instructions"].startswith("x\ufffdyzzz")
    assert len(stored["status"]["calls"]) == 1000
    assert await count(store, run_calls) == 1000


async def test_concurrent_appenders_extend_one_chain(database: str) -> None:
    stores = [RecordStore(database_url(database)) for _ in range(4)]
    await stores[0].migrate()
    try:

        async def appender(store: RecordStore, worker: int) -> None:
            for i in range(10):
                await store.append([decision(f"w{worker}", n=i + 1)], NOW)

        await asyncio.gather(*(appender(s, w) for w, s in enumerate(stores)))
        result = await stores[0].verify()
        assert result.broken is None
        assert (result.rows, result.head_id) == (40, 40)
    finally:
        for store in stores:
            await store.close()


async def test_two_operators_archiving_the_same_run_write_it_once(database: str) -> None:
    stores = [RecordStore(database_url(database)) for _ in range(3)]
    await stores[0].migrate()
    record = build_run_record(finished_run("twice"))
    try:
        written = await asyncio.gather(*(s.archive_run(record, [], NOW) for s in stores))
        assert sorted(written) == [False, False, True]
        assert await count(stores[0], runs) == 1
        assert (await stores[0].verify()).rows == 1
    finally:
        for store in stores:
            await store.close()


async def test_a_failure_mid_write_leaves_no_half_row(
    store: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = build_run_record(finished_run("half"))

    async def broken_append(*_: object) -> int:
        raise StoreUnavailableError("cut off after the run's row")

    monkeypatch.setattr(store, "_append", broken_append)
    with pytest.raises(StoreUnavailableError):
        await store.archive_run(record, [], NOW)
    monkeypatch.undo()
    assert await count(store, runs) == 0 and await count(store, run_calls) == 0
    assert await store.archive_run(record, [], NOW) is True  # the retry writes it whole


KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from jesus.logic.records import build_run_record
    from jesus.records import RecordStore, database_url
    from tests.builders.records import finished_run

    async def main() -> None:
        store = RecordStore(database_url(sys.argv[1]))
        real = store._append

        async def stalled(*args):
            await real(*args)
            print("written, not committed", flush=True)
            await asyncio.sleep(3600)

        store._append = stalled
        await store.archive_run(build_run_record(finished_run("killed", uid="uid-killed")), [], "t")

    asyncio.run(main())
    """
)


async def test_a_writer_killed_mid_transaction_leaves_nothing(store: RecordStore, database: str) -> None:
    process = subprocess.Popen(  # noqa: ASYNC220 (started once; its pipe is read in a thread)
        [sys.executable, "-c", KILLED_WRITER, database],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        assert line.strip() == "written, not committed", process.stderr.read() if process.stderr else ""
        process.send_signal(signal.SIGKILL)  # as the chaos test kills the operator
        await asyncio.to_thread(process.wait)
    finally:
        if process.poll() is None:
            process.kill()
    assert not await store.is_archived("uid-killed")
    assert await count(store, audit_log) == 0
    record = build_run_record(finished_run("killed", uid="uid-killed"))
    assert await store.archive_run(record, [], NOW) is True
    assert (await store.verify()).broken is None


TWO_REPLICAS_WRITER = textwrap.dedent(
    """
    import asyncio, pathlib, sys
    from jesus.logic.records import build_run_record
    from jesus.records import RecordStore, database_url
    from tests.builders.records import decision, finished_run

    async def main() -> None:
        database, worker, runs, barrier = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        store = RecordStore(database_url(database))
        pathlib.Path(barrier, str(worker)).touch()
        while len(list(pathlib.Path(barrier).iterdir())) < 2:  # both imported: start together
            await asyncio.sleep(0.01)
        order = range(runs) if worker == 0 else reversed(range(runs))  # meet in the middle
        written = 0
        for i in order:
            # A run handed over between the replicas: both archive it, with the same history.
            record = build_run_record(finished_run(f"run-{i}", uid=f"uid-{i}"))
            written += await store.archive_run(record, [decision(f"uid-{i}")], "t")
            await store.append([decision(f"w{worker}", n=i + 1)], "t")  # each one's own decisions
        await store.close()
        print(written, flush=True)

    asyncio.run(main())
    """
)


async def test_two_operator_processes_archiving_the_same_runs_keep_one_chain(
    database: str, tmp_path: Path
) -> None:
    """Two active replicas (docs/scale.md) are two processes appending to one chain: each run is
    archived once, each decision logged once, and the chain never forks."""
    store = RecordStore(database_url(database))
    await store.migrate()
    runs_each = 25
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            TWO_REPLICAS_WRITER,
            database,
            str(worker),
            str(runs_each),
            str(barrier),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        for worker in (0, 1)
    ]
    try:
        outputs = [await p.communicate() for p in processes]
        assert [p.returncode for p in processes] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
        assert sum(int(out) for out, _ in outputs) == runs_each  # every run written by exactly one
        assert await count(store, runs) == runs_each
        assert await count(store, run_calls) == 2 * runs_each
        result = await store.verify()
        # Per run: its admit and the archive row, once; per process: its own 25 decisions.
        assert result.broken is None
        assert (result.rows, result.head_id) == (4 * runs_each, 4 * runs_each)
        async with store.engine.connect() as connection:
            actions = (
                await connection.execute(
                    select(audit_log.c.action, func.count()).group_by(audit_log.c.action)
                )
            ).all()
        assert dict(actions) == {"admit": 3 * runs_each, "archive": runs_each}
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
        await store.close()


async def _tamper(store: RecordStore, *statements: str) -> None:
    async with store.engine.begin() as connection:
        for statement in statements:
            await connection.exec_driver_sql(statement)


async def _five_rows(store: RecordStore) -> None:
    assert await store.append([decision("u", n=i + 1) for i in range(5)], NOW) == 5
    assert (await store.verify()).broken is None


async def test_verify_names_a_row_altered_in_sql(store: RecordStore) -> None:
    await _five_rows(store)
    await _tamper(store, """UPDATE audit_log SET detail = '{"n":3,"note":"edited"}' WHERE id = 3""")
    result = await store.verify()
    assert result.broken is not None and result.broken.row_id == 3
    assert "altered" in result.broken.problem and result.rows == 2


async def test_verify_names_the_row_after_one_deleted_in_sql(store: RecordStore) -> None:
    await _five_rows(store)
    await _tamper(store, "DELETE FROM audit_log WHERE id = 2")
    result = await store.verify()
    assert result.broken is not None and result.broken.row_id == 3
    assert "row 2 is missing" in result.broken.problem


async def test_verify_names_the_last_row_deleted_by_the_head(store: RecordStore) -> None:
    await _five_rows(store)
    await _tamper(store, "DELETE FROM audit_log WHERE id = 5")
    result = await store.verify()
    assert result.broken is not None and result.broken.row_id == 5
    assert "head says the log ends at row 5" in result.broken.problem


async def test_verify_names_the_row_after_one_inserted_in_sql(store: RecordStore) -> None:
    await _five_rows(store)
    async with store.engine.connect() as connection:
        second = (await connection.execute(select(audit_log.c.hash).where(audit_log.c.id == 2))).scalar_one()
    # Room made after row 2 (ids moved up, then back down by one), and a row slipped in. It cannot
    # link to row 2 as the old row 3 does (the database refuses two rows after one): it breaks there.
    await _tamper(
        store,
        "UPDATE audit_log SET id = id + 100 WHERE id >= 3",
        "UPDATE audit_log SET id = id - 99 WHERE id >= 103",
        "INSERT INTO audit_log (id, recorded_at, entry_key, action, namespace, name, run_uid, at, detail,"
        f" prev_hash, hash) VALUES (3, '{NOW}', 'forged', 'admit', 'team-a', 'run', 'u', '{NOW}', '{{}}',"
        f" '{'a' * 64}', '{'f' * 64}')",
        "UPDATE audit_head SET last_id = 6",
    )
    result = await store.verify()
    assert result.broken is not None and result.broken.row_id == 3
    assert f"differs from row 2's hash {second[:16]}" in result.broken.problem


async def test_the_database_refuses_a_forked_chain(store: RecordStore) -> None:
    await _five_rows(store)
    async with store.engine.connect() as connection:
        head = (
            await connection.execute(select(audit_log.c.prev_hash).where(audit_log.c.id == 5))
        ).scalar_one()
    with pytest.raises(
        Exception, match=r"uq_audit_log_prev_hash|UNIQUE constraint failed: audit_log\.prev_hash"
    ):
        await _tamper(
            store,
            "INSERT INTO audit_log (id, recorded_at, entry_key, action, namespace, name, run_uid, at, detail,"
            f" prev_hash, hash) VALUES (6, '{NOW}', 'fork', 'admit', 'n', 'r', 'u', '{NOW}', '{{}}',"
            f" '{head}', '{'e' * 64}')",
        )


async def test_an_entry_offered_twice_is_logged_once(store: RecordStore) -> None:
    assert await store.append([decision("u"), decision("u")], NOW) == 1
    assert await store.append([decision("u"), decision("u", n=2)], NOW) == 1
    assert (await store.verify()).rows == 2


async def test_a_database_that_goes_away_says_which_run_and_which_database(
    postgres: PostgresServer,
) -> None:
    store = RecordStore(database_url(postgres.create_database()), busy_timeout_seconds=2)
    await store.migrate()
    record = build_run_record(finished_run("away"))
    try:
        postgres.stop()
        with pytest.raises(StoreUnavailableError) as failed:
            await store.archive_run(record, [], NOW)
        message = str(failed.value)
        assert f"AgentRun team-a/away (uid {record.uid})" in message
        assert f"127.0.0.1:{postgres.port}" in message and "password" not in message.lower()
    finally:
        postgres.start()
    assert await store.archive_run(record, [], NOW) is True  # the pool recovers once it is back
    await store.close()


async def test_a_hold_with_a_long_reason_fits_the_key_column(store: RecordStore) -> None:
    entry = dataclasses.replace(decision("u", DecisionAction.HOLD), discriminator="Why" * 400)
    assert await store.append([entry], NOW) == 1
    assert await store.append([entry], NOW) == 0
    assert (await store.verify()).broken is None


async def test_what_postgres_refuses_is_a_refusal_not_an_outage(postgres: PostgresServer) -> None:
    store = RecordStore(database_url(postgres.create_database()))
    await store.migrate()
    try:
        record = dataclasses.replace(build_run_record(finished_run("wide")), namespace="n" * 100)
        with pytest.raises(
            RecordRefusedError, match=r"refused AgentRun n{100}/wide \(uid .*StringDataRightTruncation"
        ):
            await store.archive_run(record, [], NOW)
        assert await store.count_runs() == 0
    finally:
        await store.close()
