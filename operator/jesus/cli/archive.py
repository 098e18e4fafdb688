"""`jesus archive migrate [--database URL]`: create or upgrade the run archive's schema.

The operator migrates at start too; this is for a database administrator who wants the schema in place
(or checked) first. The URL is --database, else $JESUS_ARCHIVE_DATABASE (docs/records.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import TYPE_CHECKING

from jesus.cli import CommandError, command_parser

if TYPE_CHECKING:
    from jesus.records import RecordStore


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `archive` sub-command."""
    parser = command_parser(subparsers, __doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    migrate = actions.add_parser("migrate", help="create or upgrade the schema to the newest revision")
    migrate.add_argument("--database", metavar="URL", help="default: $JESUS_ARCHIVE_DATABASE")
    migrate.set_defaults(handler=run_migrate)


def open_store(args: argparse.Namespace) -> RecordStore:
    """The RecordStore that --database (or the environment) names; CommandError naming the setting."""
    from jesus.records import ArchiveConfigError, DatabaseSetting, RecordStore, database_url
    from jesus.records.urls import ENV_VARIABLE

    if args.database is not None:
        value, setting = args.database, DatabaseSetting("--database")
    elif ENV_VARIABLE in os.environ:
        value, setting = os.environ[ENV_VARIABLE], DatabaseSetting(f"${ENV_VARIABLE}")
    else:
        raise CommandError(f"no database: give --database URL or set ${ENV_VARIABLE}")
    try:
        return RecordStore(database_url(value, setting))
    except ArchiveConfigError as exc:
        raise CommandError(str(exc)) from exc


def run_migrate(args: argparse.Namespace) -> int:
    """Migrate, print the revision reached."""
    from jesus.records import StoreUnavailableError
    from jesus.records.upgrade import current_revision

    store = open_store(args)

    async def migrate() -> str | None:
        try:
            await store.migrate()
            return await current_revision(store.engine)
        finally:
            await store.close()

    try:
        revision = asyncio.run(migrate())
    except StoreUnavailableError as exc:
        raise CommandError(str(exc)) from exc
    print(f"archive {store} is at revision {revision}")
    return 0
