"""The archive suite runs every test against SQLite and against a real PostgreSQL server (Debian's
package, one cluster per session, a fresh database per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.builders.postgres_server import PostgresServer, running_postgres

from jesus.records import RecordStore, database_url


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database's URL, as a user would write it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'archive.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
async def store(database: str) -> AsyncIterator[RecordStore]:
    """A migrated store on `database`."""
    records = RecordStore(database_url(database))
    await records.migrate()
    try:
        yield records
    finally:
        await records.close()
