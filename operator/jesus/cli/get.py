"""`jesus get runs [-n NS | -A] [-o wide|json|yaml]`: list AgentRuns from the cluster and the archive.

Runs the cluster has are shown as the API server has them; with an archive (--database, or
$JESUS_ARCHIVE_DATABASE) the finished runs the cluster no longer has are listed too, from their archived
records (SOURCE in -o wide). --archive-only reads only the archive, without a cluster.
"""

from __future__ import annotations

import argparse
import asyncio

from jesus.cli import CommandError, command_parser
from jesus.cli.inspection import (
    OUTPUTS,
    FoundRun,
    add_source_arguments,
    archive_url,
    as_list,
    connect_cluster,
    dump,
    list_runs,
    open_reader,
    run_headers,
    run_row,
    table,
)

KINDS = ("runs", "run", "agentruns", "agentrun")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `get` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument("kind", metavar="runs", help="what to list: runs (AgentRuns)")
    add_source_arguments(parser, all_namespaces=True)
    parser.add_argument("--output", "-o", choices=OUTPUTS[1:], default=None, help="wide, json or yaml")
    parser.add_argument(
        "--limit", type=int, default=500, help="at most this many archived runs, newest first (default 500)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """List and print."""
    if args.kind not in KINDS:
        raise CommandError(f"jesus get: unknown kind {args.kind!r}; only runs (AgentRuns) can be listed")
    if not 1 <= args.limit <= 10000:
        raise CommandError(f"--limit: {args.limit} is not from 1 to 10000")
    namespace = None if args.all_namespaces else args.namespace
    url = archive_url(args)

    async def gather() -> list[FoundRun]:
        reader = open_reader(url)
        try:
            cluster = await connect_cluster(args)
            return await list_runs(cluster, reader, namespace, args.limit)
        finally:
            if reader is not None:
                await reader.close()

    runs = asyncio.run(gather())
    if args.output in ("json", "yaml"):
        print(dump(as_list(runs), args.output), end="")
        return 0
    if not runs:
        print(f"No runs found in {namespace} namespace." if namespace else "No runs found.")
        return 0
    wide = args.output == "wide"
    rows = [run_row(r, wide=wide, with_namespace=namespace is None) for r in runs]
    print(table(run_headers(wide=wide, with_namespace=namespace is None), rows), end="")
    return 0
