"""`jesus archive migrate`, `jesus audit verify` and the operator's --archive-database, on both backends:
exit codes, the row a broken chain names, and errors that name the setting for a wrong URL."""

from __future__ import annotations

import asyncio
import json

import pytest
from tests.builders.records import decision

from jesus.cli import CommandError, build_parser, main
from jesus.cli.operator import _archive_database
from jesus.records import ArchiveConfigError, RecordStore, database_url

NOW = "2026-12-01T00:00:00Z"


def _append_and(database: str, *statements: str) -> None:
    async def go() -> None:
        store = RecordStore(database_url(database))
        try:
            await store.append([decision("u", n=i + 1) for i in range(4)], NOW)
            async with store.engine.begin() as connection:
                for statement in statements:
                    await connection.exec_driver_sql(statement)
        finally:
            await store.close()

    asyncio.run(go())


def test_migrate_then_verify_an_intact_log(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["archive", "migrate", "--database", database]) == 0
    assert "is at revision 0004" in capsys.readouterr().out
    _append_and(database)
    assert main(["audit", "verify", "--database", database]) == 0
    out = capsys.readouterr().out
    assert out.startswith("audit log intact: 4 rows, head row 4 hash ")


def test_verify_exits_1_naming_the_altered_row(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["archive", "migrate", "--database", database]) == 0
    _append_and(database, "UPDATE audit_log SET namespace = 'elsewhere' WHERE id = 2")
    capsys.readouterr()
    assert main(["audit", "verify", "--database", database, "-o", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["intact"], report["brokenRow"], report["rowsVerified"]) == (False, 2, 1)
    assert "altered" in report["problem"]


def test_verify_reads_the_database_from_the_environment(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JESUS_ARCHIVE_DATABASE", database)
    assert main(["archive", "migrate"]) == 0
    _append_and(database, "DELETE FROM audit_log WHERE id = 3")
    capsys.readouterr()
    assert main(["audit", "verify"]) == 1
    assert "audit log broken: audit row 4: follows row 2: row 3 is missing" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "is empty"),
        ("mysql://root@db/jesus", "the database kind 'mysql' is not supported"),
        ("not a url", "is not a database URL"),
        ("sqlite://", "a SQLite URL needs a file"),
        ("postgresql://db.example", "a PostgreSQL URL needs a database name"),
    ],
)
def test_a_wrong_url_names_the_setting(value: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--database", value]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --database") and expected in error
    args = build_parser("operator").parse_args(["operator", "--archive-database", value])
    with pytest.raises(CommandError, match=f"^--archive-database.*{expected}"):
        _archive_database(args)


def test_the_operator_reads_its_archive_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser("operator").parse_args(["operator"])
    assert _archive_database(args) is None
    monkeypatch.setenv("JESUS_ARCHIVE_DATABASE", "oracle://x/y")
    with pytest.raises(CommandError, match=r"^\$JESUS_ARCHIVE_DATABASE: the database kind 'oracle'"):
        _archive_database(args)
    monkeypatch.setenv("JESUS_ARCHIVE_DATABASE", "postgresql://u:secret@db/jesus")
    assert _archive_database(args) == "postgresql://u:secret@db/jesus"


def test_a_password_never_shows_in_what_the_store_prints() -> None:
    store = RecordStore(database_url("postgresql://u:hunter2@db.example/jesus"))
    assert "hunter2" not in str(store) and str(store) == "postgresql+psycopg://u:***@db.example/jesus"
    for wrong in ("mysql://u:hunter2@db/x", "postgresql://u:hunter2@db.example", "u:hunter2@@::"):
        with pytest.raises(ArchiveConfigError) as failed:
            database_url(wrong)
        assert "hunter2" not in str(failed.value)


def test_no_database_at_all_says_how_to_give_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JESUS_ARCHIVE_DATABASE", raising=False)
    assert main(["audit", "verify"]) == 2
    assert "give --database URL or set $JESUS_ARCHIVE_DATABASE" in capsys.readouterr().err


def test_an_unreachable_database_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["archive", "migrate", "--database", "sqlite:////nonexistent/dir/archive.db"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(
        "error: failed to migrate the archive sqlite+aiosqlite:////nonexistent/dir/archive.db"
    )
    assert error.count("\n") == 1
