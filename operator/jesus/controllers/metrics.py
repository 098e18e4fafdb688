"""The operator's Prometheus metrics: runs by phase and outcome, admission latency and queue wait,
policy decision latency, reconciles and their errors, spend by team, user and model, budget figures.

The names are what the chart's dashboards, recording rules and alerts read (docs/observability.md).
Labels are bounded: namespaces, teams, users, models, Budgets, phases and error classes, never a
run's name or UID (a run is a label value only in logs and traces).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jesus.api.agentrun import AgentRunPhase, ModelCall, Owner
from jesus.api.common import Condition, ConditionStatus
from jesus.api.lesson import Lesson
from jesus.logic.lessons import reuse_count
from jesus.logic.reflection import Item
from jesus.logic.runs import reflection_failed_items

Reconcile = Callable[[str, str], Awaitable[None]]

# Dense around the admission SLO (1 s) so the P50/P95/P99 interpolated from buckets stay honest.
ADMISSION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 30.0, 60.0,
)  # fmt: skip
# From a run's creation to its first runner Job: admission, then waiting for money or dependencies.
QUEUE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# One policy evaluation: microseconds embedded, milliseconds over HTTP, its timeout at worst.
POLICY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


def seconds_since(created: str | None, now: datetime) -> float | None:
    """Seconds from an object's creationTimestamp to `now` (never negative); None without one."""
    if not created:
        return None
    since = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return max((now - since).total_seconds(), 0.0)


class RunPhases(Collector):
    """`jesus_runs{namespace, phase}`: how many AgentRuns this operator last saw in each phase."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}

    def seen(self, namespace: str, name: str, phase: str | None) -> None:
        """Record the phase a run is in now (None: gone)."""
        if phase is None:
            self._phases.pop((namespace, name), None)
        else:
            self._phases[(namespace, name)] = phase

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "jesus_runs",
            "AgentRuns by namespace and phase, as this operator last saw them",
            labels=["namespace", "phase"],
        )
        counts = Tally((namespace, phase) for (namespace, _), phase in self._phases.items())
        for namespace in sorted({namespace for namespace, _ in counts}):
            for phase in AgentRunPhase:  # every phase, zeros too: a sum over phases never lacks a series
                family.add_metric([namespace, phase.value], counts.get((namespace, phase.value), 0))
        yield family


class LessonGauges(Collector):
    """`jesus_lessons{namespace, team, memory}` and `jesus_lesson_reuses{...}`: the Lessons in the cluster
    (LongTerm ones synced from the specs repo) and the archive's ShortTerm ones (as the operator last
    read them), and how many distinct runs reused them, read at each scrape."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[Lesson]] = tuple

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["namespace", "team", "memory"]
        lessons = GaugeMetricFamily(
            "jesus_lessons", "Lessons in the cluster, by team and memory", labels=labels
        )
        reuses = GaugeMetricFamily(
            "jesus_lesson_reuses",
            "Distinct runs that reused the cluster's Lessons, by team and memory",
            labels=labels,
        )
        counts: Tally[tuple[str, str, str]] = Tally()
        reused: Tally[tuple[str, str, str]] = Tally()
        for lesson in self.source():
            key = (lesson.metadata.namespace or "", lesson.spec.scope.team, lesson.spec.memory.value)
            counts[key] += 1
            reused[key] += reuse_count(lesson)
        for key in sorted(counts):
            lessons.add_metric(list(key), counts[key])
            reuses.add_metric(list(key), reused[key])
        yield lessons
        yield reuses


class OperatorMetrics:
    """One set of metrics, registered on `registry` (the process default in `jesus operator`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        counter = partial(Counter, registry=registry)
        self.runs = RunPhases()
        registry.register(self.runs)
        self.lessons = LessonGauges()
        registry.register(self.lessons)
        self.runs_finished = counter(
            "jesus_runs_finished", "AgentRuns that reached a final phase", ["namespace", "outcome"]
        )
        self.admission_latency = Histogram(
            "jesus_admission_latency_seconds",
            "From an AgentRun's creation to its admission (policy and budgets passed)",
            ["namespace"],
            buckets=ADMISSION_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "jesus_run_queue_wait_seconds",
            "From an AgentRun's creation to its first runner Job (admission and any wait for money)",
            ["namespace"],
            buckets=QUEUE_BUCKETS,
            registry=registry,
        )
        self.policy_latency = Histogram(
            "jesus_policy_decision_seconds",
            "Time the policy engine took for one admission decision, by engine and decision",
            ["engine", "decision"],
            buckets=POLICY_BUCKETS,
            registry=registry,
        )
        self.reconciles = counter("jesus_reconciles", "Reconciles started, by kind", ["kind"])
        self.reconcile_errors = counter(
            "jesus_reconcile_errors", "Reconciles that raised, by kind and error class", ["kind", "error"]
        )
        self.run_cost = counter(
            "jesus_run_cost_micros",
            "Cost of finished runs' model calls in micro-units, by team, user and model",
            ["namespace", "team", "user", "model"],
        )
        self.run_tokens = counter(
            "jesus_run_tokens",
            "Tokens of finished runs' model calls, by team, user, model and direction",
            ["namespace", "team", "user", "model", "direction"],
        )
        self.reflections = counter(
            "jesus_reflections",
            "Finished runs' reflections checked against LAW-REFLECT-001, by team and result (passed, failed)",
            ["namespace", "team", "result"],
        )
        self.reflection_item_failures = counter(
            "jesus_reflection_item_failures",
            "Failed LAW-REFLECT-001 items of finished runs' reflections, by item",
            ["namespace", "item"],
        )
        self.archive_pending = Gauge(
            "jesus_archive_pending",
            "Finished runs and audit entries waiting for the archive (grows while its database is away)",
            registry=registry,
        )
        self.archive_writes = counter(
            "jesus_archive_writes",
            "Archive writes of finished runs, by result (archived, duplicate, failed, invalid)",
            ["result"],
        )
        self.audit_rows = counter("jesus_audit_rows", "Decision rows appended to the audit log")
        self.lessons_learned = counter(
            "jesus_lessons_learned",
            "Archived runs' reflections read for lessons, by result (learned, missing, unreadable, invalid)",
            ["result"],
        )
        budget_gauge = partial(Gauge, labelnames=["namespace", "budget"], registry=registry)
        self.budget_spent = budget_gauge("jesus_budget_spent_micros", "Spent in the current period")
        self.budget_reserved = budget_gauge("jesus_budget_reserved_micros", "Held for admitted runs")
        self.budget_limit = budget_gauge("jesus_budget_limit_micros", "The Budget's limit")

    def budget(self, namespace: str, name: str, *, spent: int, reserved: int, limit: int) -> None:
        """Record a Budget's figures as last written."""
        self.budget_spent.labels(namespace, name).set(spent)
        self.budget_reserved.labels(namespace, name).set(reserved)
        self.budget_limit.labels(namespace, name).set(limit)

    def finished(
        self,
        namespace: str,
        outcome: str,
        owner: Owner,
        calls: list[ModelCall],
        reflection: Condition | None = None,
    ) -> None:
        """Count a run that just reached a final phase, its calls' cost and tokens by model, and its
        reflection's verdict (the Reflected condition, when it reflected)."""
        self.runs_finished.labels(namespace, outcome).inc()
        if reflection is not None:
            passed = reflection.status == ConditionStatus.TRUE
            self.expect_reflection(namespace, owner.team)
            self.reflections.labels(namespace, owner.team, "passed" if passed else "failed").inc()
            for item in reflection_failed_items(reflection) if not passed else ():
                self.reflection_item_failures.labels(namespace, item).inc()
        for call in calls:
            self.run_cost.labels(namespace, owner.team, owner.user, call.model).inc(call.cost_micros)
            for direction, tokens in (
                ("input", call.usage.input_tokens),
                ("output", call.usage.output_tokens),
            ):
                self.run_tokens.labels(namespace, owner.team, owner.user, call.model, direction).inc(tokens)

    def expect_reflection(self, namespace: str, team: str) -> None:
        """Make the reflection series of a team (and the item series of its namespace) exist at 0 while
        its run is still running, so the first verdict is an increase Prometheus sees, and a pass rate
        over a range is a number, not 0/0."""
        for result in ("passed", "failed"):
            self.reflections.labels(namespace, team, result).inc(0)
        for item in Item:
            self.reflection_item_failures.labels(namespace, item.value).inc(0)

    def counted(self, kind: str, reconcile: Reconcile) -> Reconcile:
        """`reconcile`, counted in `jesus_reconciles_total` and, when it raises, in the errors."""

        async def counting(namespace: str, name: str) -> None:
            self.reconciles.labels(kind).inc()
            try:
                await reconcile(namespace, name)
            except Exception as exc:  # a cancelled reconcile (shutdown) is no error
                self.reconcile_errors.labels(kind, type(exc).__name__).inc()
                raise

        return counting
