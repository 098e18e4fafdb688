"""The archive's database setting: checked once, with errors that name the setting, and mapped to the
async drivers the archive uses (aiosqlite, psycopg 3)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ENV_VARIABLE = "JESUS_ARCHIVE_DATABASE"
FLAG = "--archive-database"

# What a user may write, and the async driver each becomes.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


class ArchiveConfigError(ValueError):
    """The database setting is unusable; the message names the setting and says what is wrong."""


@dataclass(frozen=True)
class DatabaseSetting:
    """Where a database URL came from, for error messages: a flag, an environment variable, a file."""

    source: str = f"{FLAG} (or ${ENV_VARIABLE})"


def database_url(value: str, setting: DatabaseSetting | None = None) -> URL:
    """The async driver's URL for `value` (sqlite:///path, postgresql://user@host/db, or either with its
    async driver named); ArchiveConfigError, naming `setting`, for anything else."""
    where = (setting or DatabaseSetting()).source
    if not value.strip():
        raise ArchiveConfigError(f"{where} is empty; give a database URL such as sqlite:///archive.db")
    try:
        url = make_url(value.strip())
    except ArgumentError as exc:
        raise ArchiveConfigError(
            f"{where} is not a database URL (expected sqlite:///PATH or postgresql://USER@HOST/DB): {exc}"
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ArchiveConfigError(
            f"{where}: the database kind {url.drivername!r} is not supported "
            "(use sqlite:///PATH or postgresql://USER@HOST/DB)"
        )
    url = url.set(drivername=driver)
    if driver.startswith("sqlite") and url.database in (None, ""):
        raise ArchiveConfigError(
            f"{where}: a SQLite URL needs a file, as in sqlite:///var/lib/jesus/archive.db"
        )
    if driver.startswith("postgresql") and not url.database:
        raise ArchiveConfigError(
            f"{where}: a PostgreSQL URL needs a database name, as in postgresql://host/jesus"
        )
    return url


def describe(url: URL) -> str:
    """`url` for logs and errors: the password hidden."""
    return url.render_as_string(hide_password=True)
