"""Prometheus metrics of the router: calls, tokens, cost, latency and fallbacks, per adapter."""

from __future__ import annotations

from functools import partial

from prometheus_client import CollectorRegistry, Counter, Histogram

from jesus.router.records import CallRecord

# Model calls take from tens of milliseconds to minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


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

    def observe(self, record: CallRecord) -> None:
        """Count one finished call."""
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
        self.latency.labels(adapter).observe(record.latency_ms / 1000)
