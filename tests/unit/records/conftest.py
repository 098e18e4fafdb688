"""The archive suite runs every test against SQLite and against a real PostgreSQL server (Debian's
package, one cluster per session, a fresh database per test)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.builders.postgres_server import PostgresServer

from jesus.records import RecordStore, database_url


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: run as root, the server runs as Debian's postgres account, which
    # cannot enter pytest's private folders.
    directory = Path(tempfile.mkdtemp(prefix="jesus-postgres-"))
    server = PostgresServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


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
