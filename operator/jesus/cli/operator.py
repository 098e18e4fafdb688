"""`jesus operator`: run the control plane's reconcilers against the current cluster.

On the router's admin API the operator presents its service-account token, read from
--router-admin-token-file (a projected token for the router's audience; default
$JESUS_ROUTER_ADMIN_TOKEN_FILE); without one, the static token in $JESUS_ROUTER_ADMIN_TOKEN (local mode).
With --archive-database (or $JESUS_ARCHIVE_DATABASE), finished runs and the operator's decisions are
written to that SQL database (sqlite:///PATH or postgresql://USER@HOST/DB; docs/records.md), its schema
migrated at start. With --artifacts-endpoint (or $JESUS_ARTIFACTS_ENDPOINT), runner pods upload their
artifacts to that S3-compatible server with a grant the operator signs (docs/artifacts.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from jesus.cli import CommandError, command_parser
from jesus.logic.artifacts import ArtifactBucket
from jesus.logic.egress import DEFAULT_CLUSTER_DOMAIN, EgressRulesError, RunnerEgress, parse_egress_rules
from jesus.logic.manifests import RunnerSettings
from jesus.logic.placement import PlacementError, RunnerPlacement, parse_placement
from jesus.logic.queueing import (
    DEFAULT_LANES,
    DEFAULT_QUEUE_NAME,
    QueueingError,
    QueueSettings,
    parse_lanes,
    validate_queue_name,
)


def _run(args: argparse.Namespace) -> int:
    from jesus.controllers.app import OperatorOptions, run_operator
    from jesus.controllers.context import OperatorSettings
    from jesus.controllers.router_admin import ADMIN_TOKEN_FILE_VARIABLE, ADMIN_TOKEN_VARIABLE
    from jesus.policy.decision import PolicyLoadError
    from jesus.redaction import RedactionConfig, RedactionConfigError, install_log_redaction
    from jesus.telemetry import configure_logging, configure_tracing, forwarded_environment, shutdown_tracing

    try:
        # Patterns only unless JESUS_REDACTION_NAMES=true: the operator's text is its own sentences
        # around names and digests, plus runner and router text that was redacted where it was made.
        redaction = RedactionConfig.from_environ(os.environ, names_default=False)
    except RedactionConfigError as exc:
        raise CommandError(str(exc)) from exc
    install_log_redaction(redaction.patterns_only().redactor())
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    tracing = configure_tracing("jesus-operator")
    # Every API request at INFO is noise; our reconcilers log what they decide.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    runner = RunnerSettings(
        image=args.runner_image,
        router_url=args.router_url,
        command=tuple(args.runner_command.split()),
        cpu_request=args.runner_cpu_request,
        memory_request=args.runner_memory_request,
        cpu_limit=args.runner_cpu_limit,
        memory_limit=args.runner_memory_limit,
        # The runner exports its spans where the operator does.
        environment=forwarded_environment(os.environ),
        placement=_placement(args.runner_placement, "--runner-placement"),
    )
    _check_shards(args)
    runner_egress = _runner_egress(args)
    archive = _archive_database(args)
    options = OperatorOptions(
        kubeconfig=args.kubeconfig,
        namespaces=tuple(args.namespace or ()),
        peering=args.peering,
        shards=args.shards,
        identity=args.identity,
        lease_namespace=args.lease_namespace,
        opa_url=args.opa_url,
        policy_dir=Path(args.policies) if args.policies else None,
        settings=OperatorSettings(
            runner=runner,
            runner_egress=runner_egress,
            resync_seconds=args.resync_seconds,
            queueing=_queueing(args),
            serving_placement=_placement(args.serving_placement, "--serving-placement"),
            workers=args.worker_limit,
        ),
        worker_limit=args.worker_limit,
        router_admin_url=args.router_admin_url,
        metrics_port=args.metrics_port,
        router_admin_token=os.environ.get(ADMIN_TOKEN_VARIABLE, ""),
        router_admin_token_file=_token_file(args.router_admin_token_file, ADMIN_TOKEN_FILE_VARIABLE),
        redact=redaction.redactor(),
        archive_database=archive,
        artifacts=_artifacts(args),
        artifact_sweep_seconds=args.artifacts_sweep_seconds,
    )
    from jesus.records import StoreUnavailableError
    from jesus.records.artifacts import ArtifactStoreError

    try:
        asyncio.run(run_operator(options))
    except PolicyLoadError as exc:
        raise CommandError(f"the admission policies do not load: {exc}") from exc
    except (StoreUnavailableError, ArtifactStoreError) as exc:  # unreachable through start-up's retries
        raise CommandError(str(exc)) from exc
    finally:
        shutdown_tracing(tracing)
    return 0


def _check_shards(args: argparse.Namespace) -> None:
    """--shards, --identity and --lease-namespace go together, and not with Kopf's peering."""
    from jesus.logic.shards import check_count, check_identity

    if args.shards is not None and args.peering:
        raise CommandError("--shards and --peering exclude each other: shards make every replica active")
    if args.shards is None:
        if args.identity or args.lease_namespace:
            raise CommandError("--identity and --lease-namespace need --shards (several active replicas)")
        return
    if not args.identity or not args.lease_namespace:
        raise CommandError("--shards needs --identity (the pod name) and --lease-namespace")
    try:
        check_count(args.shards)
        check_identity(args.identity)
    except ValueError as exc:
        raise CommandError(f"--shards/--identity: {exc}") from exc


def _artifacts(args: argparse.Namespace) -> ArtifactBucket | None:
    """The artifact bucket from the flags, else the environment; None without an endpoint."""
    endpoint = args.artifacts_endpoint or os.environ.get("JESUS_ARTIFACTS_ENDPOINT")
    if not endpoint:
        return None
    if not endpoint.startswith(("http://", "https://")):
        raise CommandError(f"--artifacts-endpoint {endpoint!r} is not an http:// or https:// URL")
    return ArtifactBucket(endpoint=endpoint, bucket=args.artifacts_bucket, region=args.artifacts_region)


def _token_file(flag: str | None, variable: str) -> Path | None:
    """The --router-admin-token-file (else $JESUS_ROUTER_ADMIN_TOKEN_FILE); CommandError when it names
    no readable file, so a wrong path stops the operator at start-up instead of every registration."""
    path = flag or os.environ.get(variable) or None
    if path is None:
        return None
    if not Path(path).is_file():
        raise CommandError(
            f"--router-admin-token-file (or ${variable}): {path} is not a file; it is the operator's "
            "service-account token for the router (a projected volume)"
        )
    return Path(path)


def _archive_database(args: argparse.Namespace) -> str | None:
    """The archive's URL from the flag, else the environment; checked now, so a wrong one stops the
    operator before it connects anywhere, with an error that names the setting."""
    from jesus.records import ArchiveConfigError, DatabaseSetting, database_url
    from jesus.records.urls import ENV_VARIABLE, FLAG

    if args.archive_database is not None:
        value, setting = args.archive_database, DatabaseSetting(FLAG)
    elif ENV_VARIABLE in os.environ:
        value, setting = os.environ[ENV_VARIABLE], DatabaseSetting(f"${ENV_VARIABLE}")
    else:
        return None
    try:
        database_url(value, setting)
    except ArchiveConfigError as exc:
        raise CommandError(str(exc)) from exc
    return str(value)


def _placement(value: str | None, flag: str) -> RunnerPlacement:
    """The node selector and tolerations of --runner-placement or --serving-placement (none when the
    flag is not given)."""
    if value is None:
        return RunnerPlacement()
    try:
        return parse_placement(value, source=flag)
    except PlacementError as exc:
        raise CommandError(str(exc)) from exc


def _queueing(args: argparse.Namespace) -> QueueSettings | None:
    """With --kueue, the LocalQueue naming rule and the lanes; None without (Jobs start at once)."""
    if not args.kueue:
        if (args.kueue_lanes, args.kueue_queue_name, args.kueue_serving_lane) != (None, None, None):
            raise CommandError(
                "--kueue-lanes, --kueue-queue-name and --kueue-serving-lane take effect only with --kueue"
            )
        return None
    try:
        lanes = parse_lanes(args.kueue_lanes) if args.kueue_lanes is not None else DEFAULT_LANES
        name = validate_queue_name(args.kueue_queue_name or DEFAULT_QUEUE_NAME)
        return QueueSettings(queue_name=name, lanes=lanes, serving_lane=args.kueue_serving_lane or None)
    except QueueingError as exc:
        raise CommandError(str(exc)) from exc


def _lanes_text() -> str:
    return ",".join(f"{lane.name}={lane.min_priority}:{lane.value}" for lane in DEFAULT_LANES)


def _runner_egress(args: argparse.Namespace) -> RunnerEgress | None:
    """The --runner-egress rules, or None (no NetworkPolicies) when the flag is not given."""
    if args.runner_egress is None:
        return None
    try:
        rules = parse_egress_rules(args.runner_egress, source="--runner-egress")
    except EgressRulesError as exc:
        raise CommandError(str(exc)) from exc
    return RunnerEgress(rules=rules, cluster_domain=args.cluster_domain)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `jesus operator`."""
    defaults = RunnerSettings()
    parser = command_parser(subparsers, __doc__)
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else in-cluster)")
    parser.add_argument("--namespace", action="append", help="watch only this namespace (repeatable)")
    parser.add_argument(
        "--peering", help="Kopf peering name, for several replicas with one active (needs the peering CRDs)"
    )
    parser.add_argument("--opa-url", help="OPA server (the chart's sidecar); default: the embedded engine")
    parser.add_argument(
        "--policies", help="policy directory for the embedded engine (default: $JESUS_POLICY_DIR, ./policies)"
    )
    parser.add_argument("--runner-image", default=defaults.image)
    parser.add_argument("--runner-command", default=" ".join(defaults.command))
    for resource in ("cpu-request", "memory-request", "cpu-limit", "memory-limit"):
        parser.add_argument(
            f"--runner-{resource}",
            default=getattr(defaults, resource.replace("-", "_")),
            help=f"the runner container's {resource.replace('-', ' ')} unless a run sets its own",
        )
    parser.add_argument(
        "--runner-egress",
        metavar="JSON",
        help="NetworkPolicy egress rules every runner pod gets (DNS, the router); with it each run gets a "
        "NetworkPolicy that also allows its MCP tool servers and nothing else",
    )
    parser.add_argument(
        "--runner-placement",
        metavar="JSON",
        help='every runner pod\'s nodeSelector and tolerations: {"nodeSelector": {}, "tolerations": []}',
    )
    parser.add_argument(
        "--serving-placement",
        metavar="JSON",
        help="every self-hosted model's pods' nodeSelector and tolerations (besides the GPU toleration): "
        '{"nodeSelector": {}, "tolerations": []}',
    )
    parser.add_argument(
        "--cluster-domain",
        default=DEFAULT_CLUSTER_DOMAIN,
        help="the cluster's DNS domain, for reading tool URLs that name Services",
    )
    parser.add_argument(
        "--router-url", default=defaults.router_url, help="the router's URL as runner pods reach it"
    )
    parser.add_argument(
        "--router-admin-url", help="the router's admin API as the operator reaches it (default: --router-url)"
    )
    parser.add_argument(
        "--router-admin-token-file",
        metavar="PATH",
        help="the operator's service-account token for the router's admin API, read again every minute "
        "(default $JESUS_ROUTER_ADMIN_TOKEN_FILE; without one, $JESUS_ROUTER_ADMIN_TOKEN)",
    )
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument(
        "--archive-database",
        metavar="URL",
        help="SQL archive of finished runs and the audit log: sqlite:///PATH or postgresql://USER@HOST/DB "
        "(default: $JESUS_ARCHIVE_DATABASE; unset: no archive)",
    )
    parser.add_argument(
        "--artifacts-endpoint",
        metavar="URL",
        help="S3-compatible server for runs' artifacts, as the operator and runner pods reach it; the "
        "operator's credential from $JESUS_ARTIFACTS_ACCESS_KEY_ID and $JESUS_ARTIFACTS_SECRET_ACCESS_KEY "
        "(default: $JESUS_ARTIFACTS_ENDPOINT; unset: artifacts stay in the runner pod)",
    )
    parser.add_argument(
        "--artifacts-bucket", default=os.environ.get("JESUS_ARTIFACTS_BUCKET", "jesus-artifacts")
    )
    parser.add_argument("--artifacts-region", default=os.environ.get("JESUS_ARTIFACTS_REGION", "us-east-1"))
    parser.add_argument(
        "--artifacts-sweep-seconds",
        type=float,
        default=300.0,
        help="how often expired artifacts are looked for and deleted",
    )
    parser.add_argument(
        "--kueue",
        action="store_true",
        help="hand runner Jobs to Kueue: created suspended in the team's LocalQueue with the lane's "
        "WorkloadPriorityClass (docs/scheduling.md)",
    )
    parser.add_argument(
        "--kueue-queue-name",
        metavar="RULE",
        help=f"the LocalQueue a run's Job names, from {{team}} and {{namespace}} "
        f"(default {DEFAULT_QUEUE_NAME!r})",
    )
    parser.add_argument(
        "--kueue-lanes",
        metavar="LANES",
        help=f"priority lanes as name=minPriority:value, comma-separated (default {_lanes_text()!r})",
    )
    parser.add_argument(
        "--kueue-serving-lane",
        metavar="LANE",
        help="the lane of self-hosted models' serving Deployments (default: the highest lane)",
    )
    parser.add_argument("--resync-seconds", type=float, default=10.0)
    parser.add_argument("--worker-limit", type=int, default=200)
    parser.add_argument(
        "--shards",
        type=int,
        help="several active replicas: the runs are split into this many shards, held through Leases "
        "(docs/scale.md); needs --identity and --lease-namespace",
    )
    parser.add_argument("--identity", help="this replica's name among its peers (the pod name)")
    parser.add_argument("--lease-namespace", help="where the replicas' Leases live (the operator's own)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(handler=_run)
