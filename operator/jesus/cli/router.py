"""`jesus router`: serve the model router over HTTP (OpenAI-compatible) for runner pods.

In a cluster it watches the ModelAdapters, RoutePolicies and credentials Secrets the operator admits
runs against (all namespaces, or those of --namespace); with --specs it serves the ones of spec files
instead, with credentials from mounted Secrets (--secrets-dir/<namespace>/<secret>/<key>) or the
environment. It answers
/v1/chat/completions for runs registered through /admin/v1/runs. Only the operator may register runs:
in a cluster its service account (--operator-account, checked with a TokenReview for
--admin-audience), without one the static token in $JESUS_ROUTER_ADMIN_TOKEN. Run tokens are signed
with $JESUS_ROUTER_SIGNING_KEY (every replica the same). Metrics at /metrics.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette

from jesus.cli import CommandError, command_parser
from jesus.redaction import RedactionConfig, RedactionConfigError, Redactor, install_log_redaction
from jesus.router.accounts import AccountStore
from jesus.router.admin_auth import (
    AdminAuthenticator,
    StaticTokenAuthenticator,
    TokenReviewAuthenticator,
    parse_service_account,
)
from jesus.router.bodies import DEFAULT_MAX_BODY_BYTES, InputLimits
from jesus.router.config import (
    CredentialSource,
    EnvironmentCredentials,
    FirstOf,
    MountedSecretCredentials,
    RouterConfigError,
)
from jesus.router.core import Router
from jesus.router.metrics import RouterMetrics
from jesus.router.registry import RunRegistry
from jesus.router.service import Lifespan, RouterService, build_app
from jesus.router.sources import FileRouteSource, RouteSource
from jesus.router.tracing import captures_content
from jesus.specs import Severity, SpecPathError, SpecSet, load_specs
from jesus.telemetry import configure_logging, configure_tracing, shutdown_tracing

if TYPE_CHECKING:
    from jesus.router.cluster_source import ClusterRouteSource

ADMIN_TOKEN_VARIABLE = "JESUS_ROUTER_ADMIN_TOKEN"
OPERATOR_ACCOUNT_VARIABLE = "JESUS_ROUTER_OPERATOR_ACCOUNT"
SIGNING_KEY_VARIABLE = "JESUS_ROUTER_SIGNING_KEY"
DEFAULT_ADMIN_AUDIENCE = "jesus-router"
REDIS_URL_VARIABLE = "JESUS_ROUTER_REDIS_URL"
DEFAULT_SECRETS_DIR = Path("/var/run/secrets/jesus")
KEEP_ALIVE_SECONDS = 75
# Libraries that log a line per request at INFO (httpx: "HTTP Request: POST ... 200 OK"): every one is
# built, redacted and written for each model call. Their warnings and errors still come through.
CHATTY_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "anthropic")
# The young generation is collected after this many allocations net (CPython's default is 700): a call
# allocates thousands of short-lived objects, and most die before a larger threshold is reached.
GC_YOUNG_THRESHOLD = 10_000

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `router` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument(
        "--specs",
        type=Path,
        action="append",
        metavar="DIR",
        help="serve the ModelAdapters and RoutePolicies of these spec files or folders (repeatable); "
        "without it, watch them in the cluster",
    )
    parser.add_argument(
        "--namespace", action="append", help="in the cluster, watch only this namespace (repeatable)"
    )
    parser.add_argument(
        "--kubeconfig", help="in the cluster: kubeconfig file (default: $KUBECONFIG, in-cluster)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument("--secrets-dir", type=Path, default=DEFAULT_SECRETS_DIR, help="mounted Secrets")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="replace real providers by scripted stand-ins (no credentials used)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"refuse request bodies larger than this with 413 (default {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        metavar="URL",
        help=(
            "share runs' allowances and revoked tokens with every replica that uses this Redis "
            f"(redis://, rediss:// or unix://; default ${REDIS_URL_VARIABLE}, else this process's memory)"
        ),
    )
    parser.add_argument(
        "--operator-account",
        metavar="NAMESPACE:NAME",
        help="the operator's ServiceAccount: the only caller of the admin API, by TokenReview "
        f"(default ${OPERATOR_ACCOUNT_VARIABLE}; without one, the static ${ADMIN_TOKEN_VARIABLE})",
    )
    parser.add_argument(
        "--admin-audience",
        default=DEFAULT_ADMIN_AUDIENCE,
        help=f"the audience the operator's token must be for (default {DEFAULT_ADMIN_AUDIENCE})",
    )
    parser.set_defaults(handler=handle)


def admin_access(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[AdminAuthenticator | None, str | None]:
    """Who may call the admin API, and the key run tokens are signed with.

    --operator-account (or $JESUS_ROUTER_OPERATOR_ACCOUNT): only that ServiceAccount, by TokenReview,
    and the signing key from $JESUS_ROUTER_SIGNING_KEY (generated when unset: tokens then work on this
    process only). Else $JESUS_ROUTER_ADMIN_TOKEN (local mode), which also signs unless a signing key
    is set. Neither: the admin API is off. Both: CommandError, as the static token is for running
    without a cluster and must not open a second door into one.
    """
    account = args.operator_account or environ.get(OPERATOR_ACCOUNT_VARIABLE) or None
    static = environ.get(ADMIN_TOKEN_VARIABLE) or None
    signing_key = environ.get(SIGNING_KEY_VARIABLE) or None
    if account is None:
        return (StaticTokenAuthenticator(static) if static else None), signing_key or static
    if static is not None:
        raise CommandError(
            f"--operator-account (or ${OPERATOR_ACCOUNT_VARIABLE}) and ${ADMIN_TOKEN_VARIABLE} are both "
            f"set: the static token is for a router without a cluster; unset ${ADMIN_TOKEN_VARIABLE}"
        )
    try:
        source = f"--operator-account (or ${OPERATOR_ACCOUNT_VARIABLE})"
        username = parse_service_account(account, source=source)
        from jesus.router.token_review import ClusterTokenReviewer

        authenticator = TokenReviewAuthenticator(
            ClusterTokenReviewer(args.kubeconfig),
            username=username,
            audience=args.admin_audience,
            clock=time.monotonic,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    if signing_key is None:
        log.warning(
            "Generated a run-token signing key: other replicas and a restarted router will not accept "
            "this one's run tokens; set $%s",
            SIGNING_KEY_VARIABLE,
        )
        signing_key = secrets.token_urlsafe(32)
    return authenticator, signing_key


def build_service(
    spec_set: SpecSet,
    *,
    live: bool,
    secrets_dir: Path,
    admin_token: str | None,
    registry: CollectorRegistry,
    limits: InputLimits | None = None,
    redact: Redactor | None = None,
    store: AccountStore | None = None,
) -> RouterService:
    """A router service over the ModelAdapters and RoutePolicies of `spec_set` (`FileRouteSource`).

    Adapters are keyed `<namespace>/<name>` so that equal names in different namespaces stay apart.
    `redact` cleans provider errors and the prompts of adapters that may not receive personal data.
    `store` keeps runs' accounts and revocations (default: this process's memory).
    """
    source = FileRouteSource.build(spec_set, live=live, credentials=_credentials(secrets_dir), redact=redact)
    return service_over(source, admin_token=admin_token, registry=registry, limits=limits, store=store)


def service_over(
    source: RouteSource,
    *,
    admin_token: str | None = None,
    registry: CollectorRegistry,
    limits: InputLimits | None = None,
    store: AccountStore | None = None,
    trace_content: Redactor | None = None,
    admin: AdminAuthenticator | None = None,
    signing_key: str | None = None,
) -> RouterService:
    """A router service whose adapters and plans come from `source` (read at every call), keeping runs'
    accounts and revocations in `store` (default: this process's memory); `trace_content` redacts the
    messages that go on spans when content capture is on."""
    router = Router(source.adapters, metrics=RouterMetrics(registry), trace_content=trace_content)
    return RouterService(
        router,
        RunRegistry(),
        registry,
        admin_token=admin_token,
        admin=admin,
        signing_key=signing_key,
        resolve_plan=source.resolve_plan,
        limits=limits or InputLimits(),
        store=store,
    )


def build_store(url: str | None) -> AccountStore | None:
    """The store of runs' accounts and revocations `--redis-url` (or $JESUS_ROUTER_REDIS_URL) names;
    None for this process's memory. CommandError for a URL that names no Redis (its password unshown)."""
    url = url or os.environ.get(REDIS_URL_VARIABLE) or None
    if url is None:
        return None
    from jesus.router.redis_store import RedisAccountStore  # only a router that shares a store needs it

    try:
        return RedisAccountStore.from_url(url)
    except ValueError as exc:
        raise CommandError(f"--redis-url (or ${REDIS_URL_VARIABLE}): {exc}") from exc


def _credentials(secrets_dir: Path) -> CredentialSource:
    return FirstOf((MountedSecretCredentials(secrets_dir), EnvironmentCredentials()))


def _load_specs(paths: list[Path]) -> SpecSet:
    try:
        spec_set = load_specs(paths)
    except SpecPathError as exc:
        raise CommandError(str(exc)) from exc
    errors = [p for p in spec_set.problems if p.severity is Severity.ERROR]
    if errors:
        raise CommandError("the specs do not validate:\n" + "\n".join(p.format() for p in errors))
    return spec_set


def _watching(source: ClusterRouteSource, kubeconfig: str | None, redact: Redactor) -> Lifespan:
    """Start-up and shut-down of a router that reads the cluster: the watches run while it serves."""

    from jesus.kube import KubeClient

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            client = await KubeClient.connect(kubeconfig, redact=redact)
        except Exception as exc:  # no kubeconfig, no service account, an unreadable file: say which
            log.error("Cannot reach the cluster (%s); give --specs to serve spec files instead", exc)
            raise SystemExit(2) from None
        try:
            await source.start(client)
        except TimeoutError:
            missing = "; ".join(source.unsynced())
            await source.stop()
            log.error("Could not list from the cluster in time: %s", missing)
            raise SystemExit(2) from None
        try:
            yield
        finally:
            await source.stop()

    return lifespan


def handle(args: argparse.Namespace) -> int:
    """Load the specs (or watch the cluster), build the service and serve until interrupted."""
    import uvicorn

    try:
        redaction = RedactionConfig.from_environ(os.environ)
    except RedactionConfigError as exc:
        raise CommandError(str(exc)) from exc
    # Log lines are many and short: patterns only. Errors and prompts get the full redactor.
    install_log_redaction(redaction.patterns_only().redactor())
    configure_logging(logging.INFO)
    admin, signing_key = admin_access(args, os.environ)
    tracing = configure_tracing("jesus-router")
    limits = InputLimits(max_body_bytes=args.max_body_bytes)
    store = build_store(args.redis_url)
    lifespan: Lifespan | None = None
    if args.specs:
        try:
            source: RouteSource = FileRouteSource.build(
                _load_specs(args.specs),
                live=not args.dry_run,
                credentials=_credentials(args.secrets_dir),
                redact=redaction.redactor(),
            )
        except RouterConfigError as exc:
            raise CommandError(str(exc)) from exc
    else:
        # Imported here: a router that serves spec files does not load the Kubernetes client (~19 MiB).
        from jesus.router.cluster_source import ClusterRouteSource

        watched = ClusterRouteSource(
            namespaces=tuple(args.namespace or ()),
            live=not args.dry_run,
            fallback=_credentials(args.secrets_dir),
            redact=redaction.redactor(),
        )
        source, lifespan = watched, _watching(watched, args.kubeconfig, redaction.redactor())
    service = service_over(
        source,
        admin=admin,
        signing_key=signing_key,
        registry=REGISTRY,
        limits=limits,
        store=store,
        # Prompts and answers on spans only when asked for, and then through the full redactor.
        trace_content=redaction.redactor() if captures_content(os.environ) else None,
    )
    log.info(
        "Starting router host=%s port=%d source=%s admin_api=%s accounts=%s",
        args.host,
        args.port,
        "files" if args.specs else "cluster",
        admin.where if admin is not None else "off",
        service.accounts.where,
    )
    # After the first log line: it loads the log redactor's engines, which are start-up's too.
    serving = prepare_to_serve()
    uvicorn.run(
        build_app(service, lifespan=lifespan),
        host=args.host,
        port=args.port,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through the root logger, in the one schema
        access_log=False,
        # Longer than clients keep idle connections (5 s in httpx), so a client never sends on a
        # connection the router is closing: runners do not retry, and a lost call fails the run.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        **serving,
    )
    shutdown_tracing(tracing)
    return 0


def prepare_to_serve() -> dict[str, Any]:
    """Settle the process for serving, once start-up is done; uvicorn's event loop and HTTP parser.

    Per-request INFO lines of the HTTP and SDK libraries are turned off (CHATTY_LOGGERS). What start-up
    built (modules, SDK types, the specs) lives as long as the process: it is frozen out of the garbage
    collector, which otherwise walked those ~180k objects in every full collection (150-220 ms pauses at
    32 calls in flight). uvloop and httptools replace asyncio's loop and h11 (less CPU per request).
    """
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    return {"loop": "uvloop", "http": "httptools"}
