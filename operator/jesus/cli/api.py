"""`jesus api [--database URL] [--local]`: serve the read-only API over the run archive.

/v1/runs, /v1/runs/NS/NAME, /v1/runs/NS/NAME/calls, /v1/costs, /v1/budgets and /v1/audit, with the
OpenAPI document at /openapi.json (docs/api.md). In a cluster every request needs a bearer token the API
server authenticates (TokenReview), and a caller sees the namespaces where it may list AgentRuns
(SubjectAccessReview). The web dashboard is served at /ui (people sign in with a token there);
--trace-url links each run's page to its trace. --local serves without a cluster and without
authentication, to one user, on a loopback address only; its Budgets come from --specs files.
--openapi prints the OpenAPI document and exits. The database URL is --database, else
$JESUS_ARCHIVE_DATABASE. /v1/runs/NS/NAME/artifacts/FILE redirects to a short-lived download of an
`s3://` artifact (the store from $JESUS_ARTIFACTS_ENDPOINT, $JESUS_ARTIFACTS_BUCKET and the credential
variables) or serves a `file://` one from --artifact-dir. --workers N serves from N processes (uvicorn's
workers), which share the cursor key ($JESUS_API_CURSOR_KEY, or one generated for them) and get every
other option through $JESUS_API_SETTINGS.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jesus.cli import CommandError, command_parser

if TYPE_CHECKING:
    from fastapi import FastAPI

    from jesus.api.objects import JsonObject
    from jesus.readapi.service import BudgetSource

log = logging.getLogger("jesus.readapi")

CURSOR_KEY_VARIABLE = "JESUS_API_CURSOR_KEY"
SETTINGS_VARIABLE = "JESUS_API_SETTINGS"
MAX_WORKERS = 64
TRACE_URL_VARIABLE = "JESUS_TRACE_URL"
DEFAULT_PORT = 8090
# Longer than clients keep idle connections (5 s in httpx), so a client never sends on a connection the
# server is closing (as the router does: cli/router.py).
KEEP_ALIVE_SECONDS = 75


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `api` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument("--database", metavar="URL", help="default: $JESUS_ARCHIVE_DATABASE")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--local",
        action="store_true",
        help="no cluster: no authentication, every namespace visible; loopback addresses only",
    )
    parser.add_argument("--specs", nargs="*", default=[], metavar="PATH", help="--local: Budgets from files")
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, else the in-cluster service account")
    parser.add_argument(
        "--token-audience",
        action="append",
        default=[],
        metavar="AUDIENCE",
        help="audiences a caller's token must be for (default: the API server's own)",
    )
    parser.add_argument(
        "--cache-seconds", type=float, default=10.0, help="how long review answers are kept (default 10)"
    )
    parser.add_argument(
        "--answer-seconds",
        type=float,
        default=2.0,
        help="how long a list page, a run or a cost sum is answered again from memory (0: never; "
        "default 2): a newly archived run shows within this",
    )
    parser.add_argument(
        "--artifact-dir",
        metavar="DIR",
        help="serve `file://` artifacts from inside this directory (the directory backend); default: none",
    )
    parser.add_argument(
        "--trace-url",
        metavar="TEMPLATE",
        default=os.environ.get(TRACE_URL_VARIABLE) or None,
        help=f"the dashboard's trace link, with {{traceId}} (default: ${TRACE_URL_VARIABLE})",
    )
    parser.add_argument(
        "--refresh-seconds",
        type=int,
        default=5,
        help="how often the dashboard's runs list refreshes its newest page (0: never; default 5)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help=f"processes serving the API (1 to {MAX_WORKERS}; default 1): one a CPU the server may use",
    )
    parser.add_argument("--openapi", action="store_true", help="print the OpenAPI document and exit")
    parser.set_defaults(handler=handle)


def openapi_document() -> str:
    """The OpenAPI document of the read API, as docs/openapi/read-api.json holds it."""
    app = build_app(local=True, database="sqlite:///:memory:", cursor_key=b"0" * 32)
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


def cursor_key(environ: dict[str, str] | os._Environ[str]) -> bytes:
    """The key cursors are signed with: $JESUS_API_CURSOR_KEY, else a fresh one (this process and its
    workers only)."""
    given = environ.get(CURSOR_KEY_VARIABLE, "")
    if given:
        if len(given) < 16:
            raise CommandError(f"${CURSOR_KEY_VARIABLE} is shorter than 16 characters")
        return given.encode()
    log.warning(
        "Generated a cursor key: other replicas and a restarted server refuse this one's cursors; set $%s",
        CURSOR_KEY_VARIABLE,
    )
    return secrets.token_urlsafe(32).encode()  # text, so that workers can be given it


def build_app(
    *,
    local: bool,
    database: str,
    cursor_key: bytes,
    specs: list[str] | None = None,
    kubeconfig: str | None = None,
    audiences: tuple[str, ...] = (),
    cache_seconds: float = 10.0,
    trace_url: str | None = None,
    refresh_seconds: int = 5,
    answer_seconds: float = 2.0,
) -> FastAPI:
    """The read API and the dashboard over `database`, for the cluster (TokenReview) or local mode."""
    from jesus.logic.clock import system_clock
    from jesus.logic.run_queries import CursorSigner
    from jesus.readapi.access import (
        Authenticator,
        LocalAuthenticator,
        NamespaceAccess,
        TokenReviewAuthenticator,
    )
    from jesus.readapi.answers import AnswerCache
    from jesus.readapi.app import create_app
    from jesus.readapi.cluster import LazyCluster
    from jesus.readapi.dashboard import DashboardSettings, TraceUrlError, check_trace_url
    from jesus.readapi.service import ReadService
    from jesus.records import ArchiveConfigError, DatabaseSetting, database_url
    from jesus.records.reader import ArchiveReader

    try:
        dashboard = DashboardSettings(
            today=lambda: system_clock().date(),
            trace_url=check_trace_url(trace_url) if trace_url else None,
            refresh_seconds=max(0, refresh_seconds),
        )
    except TraceUrlError as exc:
        raise CommandError(f"--trace-url: {exc}") from exc
    try:
        reader = ArchiveReader(database_url(database, DatabaseSetting("--database")))
    except ArchiveConfigError as exc:
        raise CommandError(str(exc)) from exc
    authenticator: Authenticator
    budgets: BudgetSource
    if local:
        authenticator = LocalAuthenticator()
        access = NamespaceAccess(None, reader.namespaces, clock=time.monotonic)
        budgets = _spec_budgets(specs or [])
    else:
        cluster = LazyCluster(kubeconfig)
        authenticator = TokenReviewAuthenticator(
            cluster, clock=time.monotonic, audiences=audiences, cache_seconds=cache_seconds
        )
        access = NamespaceAccess(
            cluster, reader.namespaces, clock=time.monotonic, cache_seconds=cache_seconds
        )
        budgets = cluster.budgets
    answers = AnswerCache(time.monotonic, seconds=max(0.0, answer_seconds))
    return create_app(
        ReadService(reader, access, CursorSigner(cursor_key), budgets, answers), authenticator, dashboard
    )


def _spec_budgets(paths: list[str]) -> BudgetSource:
    from jesus.specs import load_specs

    spec_set = load_specs([Path(p) for p in paths]) if paths else None
    if spec_set is not None and spec_set.has_errors:
        raise CommandError("--specs: " + "; ".join(str(p) for p in spec_set.problems[:3]))
    objects: list[JsonObject] = []
    for loaded in spec_set.loaded_of_kind("Budget") if spec_set else []:
        obj = dict(loaded.document.data)
        obj["metadata"] = {**obj.get("metadata", {}), "namespace": loaded.namespace}
        objects.append(obj)

    async def budgets() -> list[JsonObject]:
        return objects

    return budgets


def _artifact_store(environ: dict[str, str] | os._Environ[str]) -> object | None:
    """The S3 artifact store the environment names ($JESUS_ARTIFACTS_ENDPOINT), or None."""
    endpoint = environ.get("JESUS_ARTIFACTS_ENDPOINT")
    if not endpoint:
        return None
    from jesus.logic.artifacts import ArtifactBucket
    from jesus.records.artifacts import ArtifactStoreError, S3Artifacts

    target = ArtifactBucket(
        endpoint,
        environ.get("JESUS_ARTIFACTS_BUCKET") or "jesus-artifacts",
        environ.get("JESUS_ARTIFACTS_REGION") or "us-east-1",
    )
    try:
        return S3Artifacts.from_environment(target)
    except ArtifactStoreError as exc:
        raise CommandError(str(exc)) from exc


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _settings(args: argparse.Namespace, database: str) -> dict[str, object]:
    """What every process serving the API is built from (all but the cursor key), as JSON values."""
    return {
        "local": args.local,
        "database": database,
        "specs": list(args.specs),
        "kubeconfig": args.kubeconfig,
        "audiences": list(args.token_audience),
        "cache_seconds": args.cache_seconds,
        "trace_url": args.trace_url,
        "refresh_seconds": args.refresh_seconds,
        "answer_seconds": args.answer_seconds,
        "artifact_dir": args.artifact_dir,
    }


def configured_app(settings: dict[str, Any], environ: dict[str, str] | os._Environ[str]) -> FastAPI:
    """The read API as `settings` (from `_settings`) and `environ` (the cursor key, the artifact store)
    describe it."""
    app = build_app(
        local=bool(settings["local"]),
        database=str(settings["database"]),
        cursor_key=cursor_key(environ),
        specs=[str(p) for p in settings["specs"]],
        kubeconfig=settings["kubeconfig"],
        audiences=tuple(str(a) for a in settings["audiences"]),
        cache_seconds=float(settings["cache_seconds"]),
        trace_url=settings["trace_url"],
        refresh_seconds=int(settings["refresh_seconds"]),
        answer_seconds=float(settings["answer_seconds"]),
    )
    app.state.artifacts = _artifact_store(environ)
    app.state.artifact_root = Path(settings["artifact_dir"]) if settings["artifact_dir"] else None
    return app


def worker_app() -> FastAPI:
    """A worker's app (uvicorn calls this in each worker process of `--workers`): the settings its
    parent put in $JESUS_API_SETTINGS."""
    from jesus.telemetry.logs import configure_logging

    configure_logging(logging.INFO)
    given = os.environ.get(SETTINGS_VARIABLE)
    if not given:
        raise CommandError(f"${SETTINGS_VARIABLE} is not set: worker_app is for `jesus api --workers`")
    settings: dict[str, Any] = json.loads(given)
    return configured_app(settings, os.environ)


def handle(args: argparse.Namespace) -> int:
    """Serve until interrupted (or print the OpenAPI document)."""
    if args.openapi:
        print(openapi_document(), end="")
        return 0
    import uvicorn

    from jesus.records.urls import ENV_VARIABLE
    from jesus.telemetry.logs import configure_logging

    database = args.database or os.environ.get(ENV_VARIABLE)
    if not database:
        raise CommandError(f"no database: give --database URL or set ${ENV_VARIABLE}")
    if args.local and not _loopback(args.host):
        raise CommandError(
            f"--local serves without authentication: --host must be a loopback address, not {args.host}"
        )
    if not args.local and args.specs:
        raise CommandError("--specs is for --local: in a cluster the Budgets are the cluster's")
    if not 1 <= args.workers <= MAX_WORKERS:
        raise CommandError(f"--workers must be from 1 to {MAX_WORKERS}, not {args.workers}")
    configure_logging(logging.INFO)
    settings = _settings(args, database)
    if args.workers > 1:
        # Each worker builds its own app from the environment; they share one cursor key.
        os.environ[CURSOR_KEY_VARIABLE] = cursor_key(os.environ).decode()
        os.environ[SETTINGS_VARIABLE] = json.dumps(settings)
    # Built here whatever the workers: a wrong option fails now, once, with its message.
    app = configured_app(settings, os.environ)
    log.info(
        "Serving the read API host=%s port=%s mode=%s workers=%s",
        args.host,
        args.port,
        "local" if args.local else "cluster",
        args.workers,
    )
    uvicorn.run(
        "jesus.cli.api:worker_app" if args.workers > 1 else app,
        factory=args.workers > 1,
        workers=args.workers if args.workers > 1 else None,
        host=args.host,
        port=args.port,
        log_level="warning",
        log_config=None,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return 0
