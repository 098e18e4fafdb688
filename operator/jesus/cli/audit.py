"""`jesus audit verify [--database URL]`: prove the audit log's hash chain, or name its first broken row.

Reads every row in order and checks that each follows the one before (ids rise by one, its prev_hash is
that row's hash) and that its hash is the hash of what it holds; then that the head the appenders keep
agrees with the last row. Exits 0 and prints the head hash (keep a copy elsewhere: it also catches rows
appended later) when the chain holds; exits 1 naming the first broken row and what differs there. The URL
is --database, else $JESUS_ARCHIVE_DATABASE.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from jesus.cli import CommandError, command_parser
from jesus.cli.archive import open_store


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `audit` sub-command."""
    parser = command_parser(subparsers, __doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = actions.add_parser("verify", help="check the hash chain; exit 1 naming the first broken row")
    verify.add_argument("--database", metavar="URL", help="default: $JESUS_ARCHIVE_DATABASE")
    verify.add_argument("--output", "-o", choices=("text", "json"), default="text")
    verify.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    """Verify, print the outcome, and return 0 (intact) or 1 (broken)."""
    from jesus.records import StoreUnavailableError
    from jesus.records.store import Verification

    store = open_store(args)

    async def verify() -> Verification:
        try:
            return await store.verify()
        finally:
            await store.close()

    try:
        found = asyncio.run(verify())
    except StoreUnavailableError as exc:
        raise CommandError(str(exc)) from exc
    if args.output == "json":
        report = {
            "intact": found.broken is None,
            "rowsVerified": found.rows,
            "headId": found.head_id,
            "headHash": found.head_hash,
            "brokenRow": None if found.broken is None else found.broken.row_id,
            "problem": None if found.broken is None else found.broken.problem,
        }
        print(json.dumps(report, indent=2))
    elif found.broken is None:
        print(f"audit log intact: {found.rows} rows, head row {found.head_id} hash {found.head_hash}")
    else:
        print(f"audit log broken: {found.broken} ({found.rows} rows before it verified)")
    return 0 if found.broken is None else 1
