"""Assemble and run the operator: one Kopf registry with every controller, settings that fit Jesus."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import kopf
from prometheus_client import REGISTRY, start_http_server

from jesus.api.common import GROUP
from jesus.api.lesson import Lesson
from jesus.controllers import agentrun
from jesus.controllers.archive import Archiver
from jesus.controllers.artifacts import SWEEP_SECONDS, RetentionSweeper
from jesus.controllers.context import OperatorContext, OperatorSettings
from jesus.controllers.ledger import BudgetLedger
from jesus.controllers.memory import ShortTermMemory, read_from_store
from jesus.controllers.metrics import OperatorMetrics
from jesus.controllers.router_admin import ProjectedToken, RouterAdminClient
from jesus.controllers.shards import ShardOwnership, shard_ownership
from jesus.kube import KubeClient
from jesus.logic.artifacts import ArtifactBucket
from jesus.logic.clock import Clock, system_clock
from jesus.logic.lessons import LessonPolicy
from jesus.logic.shards import shard_of
from jesus.policy.decision import PolicyEngine
from jesus.policy.embedded import EmbeddedEngine
from jesus.policy.lessons import EmbeddedLessonPolicy, KeptVerdicts, OpaServerLessonPolicy
from jesus.policy.opa_server import OpaServerEngine
from jesus.policy.sources import default_policy_dir
from jesus.records import RecordStore, StoreUnavailableError, database_url
from jesus.records.artifacts import ArtifactStoreError, S3Artifacts
from jesus.records.lessons import LessonArchive
from jesus.redaction import RedactionConfig, Redactor

logger = logging.getLogger(__name__)

# Controller modules, each with register(registry, context). The cache comes first, so its watch
# handlers see an event before any reconciler that reads the cache does.
CONTROLLER_MODULES = ("cache", "agentrun", "budget", "modeladapter", "routepolicy")


@dataclass(frozen=True)
class OperatorOptions:
    """How `jesus operator` was asked to run."""

    kubeconfig: str | None = None
    namespaces: Sequence[str] = ()
    peering: str | None = None
    shards: int | None = None
    """Several active replicas: the runs split into this many shards, held through Leases (docs/scale.md)."""
    identity: str | None = None
    """This replica's name among its peers (with `shards`)."""
    lease_namespace: str | None = None
    """Where the replicas' Leases live (with `shards`)."""
    opa_url: str | None = None
    policy_dir: Path | None = None
    settings: OperatorSettings = field(default_factory=OperatorSettings)
    worker_limit: int = 200
    router_admin_url: str | None = None
    """Where the operator reaches the router's admin API (default: the runners' router URL)."""
    router_admin_token: str = ""
    """The static admin token (local mode), when no token file is given."""
    router_admin_token_file: Path | None = None
    """The operator's projected service-account token for the router (cluster mode)."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port (0.0.0.0) when set."""
    redact: Redactor | None = None
    """Cleans Event messages and statuses' free text; default: the patterns-only redactor."""
    archive_database: str | None = None
    """The SQL archive of finished runs and the audit log (docs/records.md); None: no archive."""
    artifacts: ArtifactBucket | None = None
    """The S3 bucket for runs' artifacts (docs/artifacts.md); the credential comes from the environment.
    None: runner pods keep artifacts in their artifact directory."""
    artifact_sweep_seconds: float = SWEEP_SECONDS
    """How often expired artifacts are looked for."""


class LeanDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """Kopf's annotation diff-base, without deep-copying the parts its essence throws away.

    Kopf builds the essence of every event by deep-copying the whole object and then deleting its
    metadata and status; for our runs that copy (managedFields, the status with its calls) was the
    largest single cost in the operator's profile under load. Only the fields the essence keeps are
    handed on, so the essence is exactly Kopf's.
    """

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        if extra_fields:
            return super().build(body=body, extra_fields=extra_fields)
        metadata = body.get("metadata", {})
        kept: dict[str, Any] = {k: v for k, v in body.items() if k not in ("metadata", "status")}
        kept["metadata"] = {k: metadata[k] for k in ("labels", "annotations") if k in metadata}
        return super().build(body=kopf.Body(cast(kopf.RawBody, kept)))


def in_cluster_server(environ: Mapping[str, str]) -> str:
    """The API server's URL inside a pod, as client-go finds it: KUBERNETES_SERVICE_HOST and
    KUBERNETES_SERVICE_PORT, which every kubelet sets (Kopf's own service-account login assumes
    `kubernetes.default.svc` on 443, which only holds where cluster DNS and the Service do)."""
    host = environ.get("KUBERNETES_SERVICE_HOST")
    port = environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return "https://kubernetes.default.svc"
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def build_registry(context: OperatorContext, options: OperatorOptions) -> kopf.OperatorRegistry:
    """A registry with every controller's handlers, the login and the settings."""
    registry = kopf.OperatorRegistry()
    for name in CONTROLLER_MODULES:
        try:
            module = importlib.import_module(f"jesus.controllers.{name}")
        except ModuleNotFoundError:
            continue
        module.register(registry, context)

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info = kopf.login_with_kubeconfig(**kwargs)
        if info is not None:
            return info
        info = kopf.login_with_service_account(**kwargs)
        return None if info is None else dataclasses.replace(info, server=in_cluster_server(os.environ))

    @kopf.on.startup(id="settings", registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Kopf's bookkeeping goes to annotations under our group, so the status schema stays strict.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = LeanDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # No handler needs Kopf's finalizer any more (AgentRuns go through the work queue, issue 20);
        # the name stays, so Kopf removes it from objects an older operator put it on.
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        # Our reconcilers post their own Events for decisions; Kopf's per-handler chatter is noise.
        settings.posting.level = logging.WARNING
        # Many runs at once: bound concurrency so the API server is not flooded.
        settings.queueing.worker_limit = options.worker_limit
        settings.execution.max_workers = 4
        # Retries: kopf.TemporaryError sets its own delay; an unexpected error backs off.
        settings.networking.error_backoffs = [1, 2, 5, 10, 30]
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330

    return registry


def build_lesson_policy(engine: PolicyEngine, clock: Clock) -> LessonPolicy | None:
    """Which lessons runs are offered, decided by the admission engine's own policy (its verdicts
    kept a minute); None for an engine that has no lesson decision."""
    if isinstance(engine, EmbeddedEngine):
        return KeptVerdicts(EmbeddedLessonPolicy(engine), clock)
    if isinstance(engine, OpaServerEngine):
        return KeptVerdicts(OpaServerLessonPolicy(engine.base_url, engine.client), clock)
    return None


def build_policy_engine(options: OperatorOptions) -> PolicyEngine:
    """The OPA server when a URL is given (the chart's sidecar), else the embedded engine."""
    if options.opa_url:
        return OpaServerEngine(options.opa_url)
    return EmbeddedEngine.from_directory(options.policy_dir or default_policy_dir())


async def run_operator(
    options: OperatorOptions,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run until stopped: connect, build the context and the registry, start Kopf."""
    redact = options.redact or RedactionConfig(names=False).redactor()
    kube = await KubeClient.connect(options.kubeconfig, redact=redact)
    metrics = OperatorMetrics(REGISTRY)
    if options.metrics_port is not None:
        start_http_server(options.metrics_port, registry=REGISTRY)
    context = OperatorContext(
        kube=kube,
        policy=(engine := build_policy_engine(options)),
        ledger=BudgetLedger(kube, system_clock, metrics),
        metrics=metrics,
        router=RouterAdminClient(
            options.router_admin_url or options.settings.runner.router_url,
            ProjectedToken(options.router_admin_token_file, time.monotonic)
            if options.router_admin_token_file is not None
            else options.router_admin_token,
        ),
        settings=options.settings,
        namespaces=tuple(options.namespaces),
        peering=options.peering is not None,
    )
    context.lesson_policy = build_lesson_policy(engine, context.clock)
    if options.archive_database:
        context.archiver = await open_archive(options.archive_database, context)
    metrics.lessons.source = partial(lessons_in_memory, context)
    sweeper = await open_artifacts(options, context)
    await context.cache.prime(kube, options.namespaces)
    registry = build_registry(context, options)
    shards = context.shards = open_shards(options, context)
    await shards.start()
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=not options.namespaces,
            namespaces=list(options.namespaces),
            standalone=options.peering is None,
            peering_name=options.peering,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        await shards.stop()  # gives its shards up, so a peer takes them over at once
        if sweeper is not None:
            await sweeper.stop()
        if context.archiver is not None:
            await context.archiver.stop()


START_RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 30.0, 30.0)
DRAIN_SECONDS = 2.0


def open_shards(options: OperatorOptions, context: OperatorContext) -> ShardOwnership:
    """Which runs this replica reconciles: all of them, or (`options.shards`) the shards it holds. A
    shard taken over has its runs queued; a shard given up waits for its passes in flight first."""
    queue = context.run_queue
    assert queue is not None, "the AgentRun handlers make the queue"
    count = options.shards or 1

    def in_shard(shard: int) -> Callable[[tuple[str, str]], bool]:
        return lambda key: shard_of(key[0], key[1], count) == shard

    async def acquired(shard: int) -> None:
        queued = queue.requeue([key for key in queue.known() if in_shard(shard)(key)])
        logger.info("Took over shard=%d runs=%d", shard, queued)

    async def released(shard: int) -> None:
        # Bounded: this runs inside the lease loop, and a pass that outlives it is harmless (its writes
        # carry the resourceVersion it read); waiting longer would let the other shards' renewals lapse.
        drained = asyncio.ensure_future(queue.drain(in_shard(shard)))
        done, _ = await asyncio.wait({drained}, timeout=DRAIN_SECONDS)
        if not done:
            drained.cancel()
        logger.info("Gave up shard=%d drained=%s", shard, bool(done))

    # Renewals get their own request slots: queued behind a thousand reconciles' requests, a renewal
    # could come too late and fence the shard.
    return shard_ownership(
        context.kube.sibling(),
        shards=options.shards,
        identity=options.identity,
        lease_namespace=options.lease_namespace,
        clock=time.monotonic,
        on_acquired=acquired,
        on_released=released,
    )


def lessons_in_memory(context: OperatorContext) -> list[Lesson]:
    """The cluster's Lessons and the archive's short-term ones, as the lesson gauges count them."""
    short_term = context.memory.cached if context.memory is not None else []
    return [*context.cache.lessons.valid(), *short_term]


async def open_archive(
    database: str,
    context: OperatorContext,
    retry_delays: Sequence[float] = START_RETRY_DELAYS,
) -> Archiver:
    """The archive writer for `database`: the schema migrated (every start; idempotent), the writer
    started. A database that is down at start is waited for: the operator does not run without the
    schema it writes to. A URL that is wrong raises ArchiveConfigError, naming the setting."""
    store = RecordStore(database_url(database))
    for delay in retry_delays:
        try:
            await store.migrate()
            break
        except StoreUnavailableError as exc:
            logger.warning("Failed to reach the archive retryIn=%.0fs error=%s", delay, exc)
            await asyncio.sleep(delay)
    else:
        try:
            await store.migrate()  # the last try's error is the operator's
        except StoreUnavailableError:
            await store.close()
            raise
    logger.info("Opened the archive database=%s", store)

    async def archived(namespace: str, name: str) -> None:
        await agentrun.request(context, namespace, name)

    context.memory = ShortTermMemory(
        LessonArchive(store), context.clock, partial(read_from_store, context), context.metrics
    )
    archiver = Archiver(
        store, context.clock, context.metrics, on_archived=archived, learn=context.memory.learn
    )
    archiver.start()
    return archiver


async def open_artifacts(
    options: OperatorOptions, context: OperatorContext, retry_delays: Sequence[float] = START_RETRY_DELAYS
) -> RetentionSweeper | None:
    """The S3 artifact store (its bucket created when missing) and its retention sweep, started; None
    without `options.artifacts`. A server that is down at start is waited for, as the archive is."""
    if options.artifacts is None:
        return None
    store = S3Artifacts.from_environment(options.artifacts, clock=context.clock)
    for delay in (*retry_delays, None):
        try:
            await asyncio.to_thread(store.ensure_bucket)
            break
        except ArtifactStoreError as exc:
            if delay is None:
                raise
            logger.warning("Failed to reach the artifact store retryIn=%.0fs error=%s", delay, exc)
            await asyncio.sleep(delay)
    logger.info("Opened the artifact store endpoint=%s bucket=%s", options.artifacts.endpoint, store.bucket)
    context.artifacts = store

    async def expired(namespace: str, name: str) -> None:
        await agentrun.request(context, namespace, name)

    archiver = context.archiver
    sweeper = RetentionSweeper(
        store,
        context.clock,
        interval=options.artifact_sweep_seconds,
        on_expired=expired,
        audit=archiver.offer_decisions if archiver is not None else None,
    )
    sweeper.start()
    return sweeper
