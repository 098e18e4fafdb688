"""`jesus router`: serve the model router over HTTP (OpenAI-compatible) for runner pods.

It loads ModelAdapters and RoutePolicies from --specs, resolves provider credentials from mounted
Secrets (--secrets-dir/<namespace>/<secret>/<key>) or the environment, and answers
/v1/chat/completions for runs registered through /admin/v1/runs (admin token from
$JESUS_ROUTER_ADMIN_TOKEN). Metrics at /metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry

from jesus.api import ModelAdapter, RoutePolicy
from jesus.cli import CommandError, command_parser
from jesus.logic.budget import DEFAULT_NAMESPACE
from jesus.logic.routing import RoutePlan, plan_from_route_policy
from jesus.redaction import RedactionConfig, RedactionConfigError, Redactor, install_log_redaction
from jesus.router.bodies import DEFAULT_MAX_BODY_BYTES, InputLimits
from jesus.router.config import (
    EnvironmentCredentials,
    FirstOf,
    MountedSecretCredentials,
    RouterConfigError,
    build_routed_adapters,
)
from jesus.router.core import Router
from jesus.router.metrics import RouterMetrics
from jesus.router.registry import RunRegistry
from jesus.router.routed import RoutedAdapter
from jesus.router.service import PlanResolver, RouterService, build_app
from jesus.specs import Severity, SpecPathError, SpecSet, load_specs

ADMIN_TOKEN_VARIABLE = "JESUS_ROUTER_ADMIN_TOKEN"
DEFAULT_SECRETS_DIR = Path("/var/run/secrets/jesus")
KEEP_ALIVE_SECONDS = 75

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `router` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument(
        "--specs", type=Path, action="append", required=True, metavar="DIR", help="spec files or folders"
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
    parser.set_defaults(handler=handle)


def build_service(
    spec_set: SpecSet,
    *,
    live: bool,
    secrets_dir: Path,
    admin_token: str | None,
    registry: CollectorRegistry,
    limits: InputLimits | None = None,
    redact: Redactor | None = None,
) -> RouterService:
    """A router service over the ModelAdapters and RoutePolicies of `spec_set`.

    Adapters are keyed `<namespace>/<name>` so that equal names in different namespaces stay apart.
    `redact` cleans provider errors and the prompts of adapters that may not receive personal data.
    """
    credentials = FirstOf((MountedSecretCredentials(secrets_dir), EnvironmentCredentials()))
    adapters: dict[str, RoutedAdapter] = {}
    by_namespace: dict[str, dict[str, ModelAdapter]] = {}
    for loaded in spec_set.loaded_of_kind("ModelAdapter"):
        if isinstance(loaded.obj, ModelAdapter):
            by_namespace.setdefault(loaded.namespace or DEFAULT_NAMESPACE, {})[loaded.name] = loaded.obj
    for namespace, objects in by_namespace.items():
        built = build_routed_adapters(
            objects, live=live, credentials=credentials, namespace=namespace, redact=redact
        )
        for name, routed in built.adapters.items():
            key = f"{namespace}/{name}"
            adapters[key] = dataclasses.replace(routed, name=key)
    policies = {
        (loaded.namespace or DEFAULT_NAMESPACE, loaded.name): loaded.obj
        for loaded in spec_set.loaded_of_kind("RoutePolicy")
        if isinstance(loaded.obj, RoutePolicy)
    }

    def resolve_plan(namespace: str, route_policy: str, classification: str) -> RoutePlan:
        policy = policies.get((namespace, route_policy))
        if policy is None:
            raise ValueError(f"RoutePolicy {namespace}/{route_policy} is not known to this router")
        plan, _ = plan_from_route_policy(
            policy.spec, classification=classification, adapters=by_namespace.get(namespace, {})
        )
        return dataclasses.replace(plan, chain=tuple(f"{namespace}/{name}" for name in plan.chain))

    resolver: PlanResolver = resolve_plan
    router = Router(adapters, metrics=RouterMetrics(registry))
    return RouterService(
        router,
        RunRegistry(),
        registry,
        admin_token=admin_token,
        resolve_plan=resolver,
        limits=limits or InputLimits(),
    )


def handle(args: argparse.Namespace) -> int:
    """Load the specs, build the service and serve until interrupted."""
    import uvicorn

    try:
        spec_set = load_specs(args.specs)
    except SpecPathError as exc:
        raise CommandError(str(exc)) from exc
    errors = [p for p in spec_set.problems if p.severity is Severity.ERROR]
    if errors:
        raise CommandError("the specs do not validate:\n" + "\n".join(p.format() for p in errors))
    admin_token = os.environ.get(ADMIN_TOKEN_VARIABLE) or None
    try:
        redaction = RedactionConfig.from_environ(os.environ)
    except RedactionConfigError as exc:
        raise CommandError(str(exc)) from exc
    # Log lines are many and short: patterns only. Errors and prompts get the full redactor.
    install_log_redaction(redaction.patterns_only().redactor())
    try:
        service = build_service(
            spec_set,
            live=not args.dry_run,
            secrets_dir=args.secrets_dir,
            admin_token=admin_token,
            registry=REGISTRY,
            limits=InputLimits(max_body_bytes=args.max_body_bytes),
            redact=redaction.redactor(),
        )
    except RouterConfigError as exc:
        raise CommandError(str(exc)) from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info(
        "Starting router host=%s port=%d adapters=%d admin_api=%s",
        args.host,
        args.port,
        len(service.router.adapters),
        admin_token is not None,
    )
    uvicorn.run(
        build_app(service),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        # Longer than clients keep idle connections (5 s in httpx), so a client never sends on a
        # connection the router is closing: runners do not retry, and a lost call fails the run.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return 0
