"""The operator's Prometheus metrics: runs by outcome, admission latency, budget figures.

The names are what the chart's dashboard and alert rules read.
"""

from __future__ import annotations

from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ADMISSION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class OperatorMetrics:
    """One set of metrics, registered on `registry` (the process default in `jesus operator`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.runs_finished = Counter(
            "jesus_runs_finished",
            "AgentRuns that reached a final phase",
            ["namespace", "outcome"],
            registry=registry,
        )
        self.admission_latency = Histogram(
            "jesus_admission_latency_seconds",
            "From an AgentRun's creation to its admission (policy and budgets passed)",
            ["namespace"],
            buckets=ADMISSION_BUCKETS,
            registry=registry,
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
