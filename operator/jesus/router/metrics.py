"""Prometheus metrics of the router: calls, tokens, cost, latency, fallbacks and breakers, per adapter.

Labels are bounded by the configured adapters and providers, error kinds and directions; never a run
(docs/observability.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jesus.logic.routing import BreakerStatus
from jesus.router.records import CallRecord

# Model calls take from tens of milliseconds to minutes; the steps stay within about 1.5x of each
# other up to a minute, so a P50/P95/P99 interpolated inside a bucket is off by less than that.
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
    4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0,
)  # fmt: skip

BreakerStates = Callable[[], Mapping[str, BreakerStatus]]


class _Breakers(Collector):
    """`jesus_router_breaker_state{adapter, state}`: 1 for each adapter's current breaker state."""

    def __init__(self) -> None:
        self.states: BreakerStates = dict

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "jesus_router_breaker_state",
            "Each adapter's circuit breaker: 1 for its current state (Closed, Open, HalfOpen), else 0.",
            labels=["adapter", "state"],
        )
        for adapter, current in sorted(self.states().items()):
            for state in BreakerStatus:
                family.add_metric([adapter, state.value], 1.0 if state is current else 0.0)
        yield family


class RouterMetrics:
    """The router's metrics, registered in the registry it is given (the default one in the service)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        counter = partial(Counter, registry=registry)
        self.calls = counter(
            "jesus_router_calls",
            "Model calls through the router, by the adapter that answered and outcome.",
            ["adapter", "provider", "outcome"],
        )
        self.attempts = counter(
            "jesus_router_attempts",
            "Attempts on each adapter, by outcome (ok, an error kind, or CircuitOpen).",
            ["adapter", "outcome"],
        )
        self.tokens = counter(
            "jesus_router_tokens", "Tokens metered by the router.", ["adapter", "provider", "direction"]
        )
        self.cost = counter(
            "jesus_router_cost_micros",
            "Cost of model calls in micro-units of the price currency.",
            ["adapter", "provider"],
        )
        self.latency = Histogram(
            "jesus_router_call_latency_seconds",
            "Latency of model calls through the router, retries and fallbacks included.",
            ["adapter"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fallbacks = counter(
            "jesus_router_fallbacks",
            "Fallbacks from one adapter to the next.",
            ["from_adapter", "to_adapter"],
        )
        self._breakers = _Breakers()
        registry.register(self._breakers)

    def watch_breakers(self, states: BreakerStates) -> None:
        """Export the breaker states `states` returns (each adapter's, read at every scrape)."""
        self._breakers.states = states

    def observe(self, record: CallRecord, trace_id: str | None = None) -> None:
        """Count one finished call; its latency carries `trace_id` (the run's trace) as an exemplar."""
        adapter = record.adapter or "none"
        provider = record.provider or "none"
        self.calls.labels(adapter, provider, record.outcome).inc()
        for attempt in record.attempts:
            self.attempts.labels(attempt.adapter, attempt.error_kind or attempt.outcome).inc()
        for fallback in record.fallbacks:
            self.fallbacks.labels(fallback.from_adapter, fallback.to_adapter).inc()
        if record.adapter is not None:
            self.tokens.labels(adapter, provider, "input").inc(record.input_tokens)
            self.tokens.labels(adapter, provider, "output").inc(record.output_tokens)
            self.cost.labels(adapter, provider).inc(record.cost_micros)
        exemplar = {"trace_id": trace_id} if trace_id else None
        self.latency.labels(adapter).observe(record.latency_ms / 1000, exemplar=exemplar)
