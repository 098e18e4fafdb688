"""What every reconciler is handed: the API client, the policy engine, the budget ledger, settings.

No module-level globals: the operator builds one OperatorContext at start-up and passes it to each
controller's `register`.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

from jesus.controllers.archive import Archiver
from jesus.controllers.cache import ClusterCache
from jesus.controllers.ledger import BudgetLedger
from jesus.controllers.memory import ShortTermMemory
from jesus.controllers.metrics import OperatorMetrics
from jesus.controllers.router_admin import RunRegistrar
from jesus.controllers.runner_keys import RunnerKeys
from jesus.controllers.shards import AllShards, ShardOwnership
from jesus.controllers.workqueue import WorkQueue
from jesus.kube import KubeClient
from jesus.logic.clock import Clock, system_clock
from jesus.logic.egress import RunnerEgress
from jesus.logic.lessons import LessonPolicy
from jesus.logic.manifests import RunnerSettings
from jesus.logic.placement import RunnerPlacement
from jesus.logic.queueing import QueueSettings
from jesus.logic.waiting import BudgetWaits
from jesus.policy.decision import PolicyEngine
from jesus.records.artifacts import S3Artifacts


@dataclass(frozen=True)
class OperatorSettings:
    """Tunables of the reconcilers (the CLI and the chart set them)."""

    runner: RunnerSettings = field(default_factory=RunnerSettings)
    runner_egress: RunnerEgress | None = None
    """What runner pods may reach besides their run's tool servers; with it, every run gets a
    NetworkPolicy (`jesus.logic.egress`). None makes none (a cluster without a policy controller)."""
    resync_seconds: float = 10.0
    """How often a live object is reconciled even when nothing told us it changed."""
    policy_retry_seconds: float = 5.0
    """How soon a run is retried when the policy engine gave no decision (fail closed, not final)."""
    serving_placement: RunnerPlacement = field(default_factory=RunnerPlacement)
    """Node selector and tolerations of every serving pod (`--serving-placement`), beside the GPU ones."""
    queueing: QueueSettings | None = None
    """With Kueue (`--kueue`): runner Jobs go to the team's LocalQueue in their lane, suspended until
    Kueue admits them (`jesus.logic.queueing`). None: Jobs start at once (the embedded default)."""
    workers: int = 200
    """How many AgentRuns are reconciled at once (the work queue's workers)."""


@dataclass
class OperatorContext:
    """The operator's collaborators, shared by every handler."""

    kube: KubeClient
    policy: PolicyEngine
    ledger: BudgetLedger
    router: RunRegistrar
    settings: OperatorSettings = field(default_factory=OperatorSettings)
    clock: Clock = system_clock
    metrics: OperatorMetrics | None = None
    archiver: Archiver | None = None
    """Writes finished runs and decisions to the SQL archive; None when the operator has no database."""
    memory: ShortTermMemory | None = None
    """The archive's short-term lessons, and learning from archived runs; None without an archive."""
    lesson_policy: LessonPolicy | None = None
    """Which lessons runs may be offered (policies/lessons/); None: every lesson."""
    artifacts: S3Artifacts | None = None
    """The S3 bucket runner pods upload artifacts to with a grant (docs/artifacts.md); None: they keep
    them in the pod's artifact directory."""
    cache: ClusterCache = field(default_factory=ClusterCache)
    """Budgets, RoutePolicies and ModelAdapters as the watches last reported them."""
    runner_accounts: set[str] = field(default_factory=set)
    """Namespaces where the runner ServiceAccount is known to exist (saves two requests a run)."""
    budget_waits: BudgetWaits = field(default_factory=BudgetWaits)
    """Runs refused for money, to wake when a Budget frees some (and to skip while nothing changed)."""
    written_versions: dict[tuple[str, str], str] = field(default_factory=dict)
    """The resourceVersion of the last AgentRun status this operator wrote, by run: an event older
    than it is known stale."""
    runner_keys: RunnerKeys = field(init=False)
    """The runner key of each namespace, which seals runner Jobs' router tokens."""
    shards: ShardOwnership = field(default_factory=AllShards)
    """Which runs this process reconciles; every run unless it is one of several active replicas."""
    run_queue: WorkQueue | None = None
    """The AgentRun work queue, once the handlers are registered (unit tests reconcile directly)."""
    namespaces: tuple[str, ...] = ()
    """The namespaces the operator watches (`--namespace`); empty: every namespace."""
    peering: bool = False
    """Kopf peering (one active replica, the others on standby): Kopf pauses its watches in standby,
    so runner Jobs are followed through Kopf too, not through the operator's own watch of them."""
    locks: defaultdict[tuple[str, str, str], asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )

    def __post_init__(self) -> None:
        self.runner_keys = RunnerKeys(self.kube, time.monotonic)

    def lock(self, kind: str, namespace: str, name: str) -> asyncio.Lock:
        """One lock per object, so two triggers never reconcile the same object at once."""
        return self.locks[(kind, namespace, name)]
