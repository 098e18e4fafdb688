"""`jesus mcp [--database URL] [--kubeconfig FILE]`: the platform's MCP server, over stdio.

Tools: list_runs, get_run, run_calls, costs and budgets (what the read API answers), and submit_run,
which creates an AgentRun with your own Kubernetes credentials (your kubeconfig): the API server's RBAC
and run-owner policy judge you, and the run's owner is who the API server says you are. The archive is
read with the database URL given (--database, else $JESUS_ARCHIVE_DATABASE), as `jesus api --local`
reads it: whoever holds that URL reads every namespace. --no-cluster leaves the cluster out (no
submit_run; Budgets from --specs files).
"""

from __future__ import annotations

import argparse
import os
import time

from jesus.cli import CommandError, command_parser


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `mcp` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument("--database", metavar="URL", help="default: $JESUS_ARCHIVE_DATABASE")
    parser.add_argument("--kubeconfig", default=None, metavar="FILE", help="default: $KUBECONFIG")
    parser.add_argument("--no-cluster", action="store_true", help="no cluster: no submit_run")
    parser.add_argument(
        "--specs", nargs="*", default=[], metavar="PATH", help="--no-cluster: Budgets from files"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Serve MCP on stdin/stdout until the client leaves."""
    import secrets

    from jesus.cli.api import _spec_budgets
    from jesus.logic.run_queries import CursorSigner
    from jesus.readapi.access import NamespaceAccess
    from jesus.readapi.cluster import LazyCluster
    from jesus.readapi.mcp_server import build_mcp_server
    from jesus.readapi.service import BudgetSource, ReadService
    from jesus.records import ArchiveConfigError, DatabaseSetting, database_url
    from jesus.records.reader import ArchiveReader
    from jesus.records.urls import ENV_VARIABLE

    database = args.database or os.environ.get(ENV_VARIABLE)
    if not database:
        raise CommandError(f"no database: give --database URL or set ${ENV_VARIABLE}")
    if args.specs and not args.no_cluster:
        raise CommandError("--specs is for --no-cluster: with a cluster the Budgets are the cluster's")
    try:
        reader = ArchiveReader(database_url(database, DatabaseSetting("--database")), pool_size=2)
    except ArchiveConfigError as exc:
        raise CommandError(str(exc)) from exc
    budgets: BudgetSource
    if args.no_cluster:
        submitter = None
        budgets = _spec_budgets(args.specs)
    else:
        cluster = LazyCluster(args.kubeconfig)
        submitter = cluster
        budgets = cluster.budgets
    access = NamespaceAccess(None, reader.namespaces, clock=time.monotonic)
    service = ReadService(reader, access, CursorSigner(secrets.token_bytes(32)), budgets)
    build_mcp_server(service, submitter).run("stdio")
    return 0
