"""The router's and the operator's metrics keep label cardinality bounded: no metric has a label that
names a run (run, name, uid, call or trace ids, Jobs, pods, tokens), and a thousand runs make no more
series than one; a run's hostile or careless name never shows up in the exposition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from jesus.api.agentrun import ModelCall, Owner, Usage
from jesus.controllers.metrics import OperatorMetrics, seconds_since
from jesus.router.metrics import RouterMetrics
from jesus.router.records import AttemptRecord, CallRecord, FallbackRecord

FORBIDDEN = {"run", "name", "uid", "call_id", "callid", "trace_id", "job", "job_name", "pod", "token"}
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _series(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for metric in registry.collect()
        for sample in metric.samples
    }


def _label_names(registry: CollectorRegistry) -> set[str]:
    return {label for metric in registry.collect() for sample in metric.samples for label in sample.labels}


def _router_calls(metrics: RouterMetrics, runs: int, run_name: Callable[[int], str]) -> None:
    for index in range(runs):
        metrics.observe(
            CallRecord(
                call_id=f"call-{index}",
                run=run_name(index),
                adapter="backup",
                provider="openai",
                model="gpt-x",
                attempts=[
                    AttemptRecord("flaky", "error", 3.0, error_kind="Overloaded"),
                    AttemptRecord("backup", "ok", 5.0),
                ],
                fallbacks=[FallbackRecord("flaky", "backup", "overloaded", "Overloaded")],
                input_tokens=10,
                output_tokens=5,
                cost_micros=7,
                latency_ms=8.0,
            )
        )


def _operator_runs(metrics: OperatorMetrics, runs: int, run_name: Callable[[int], str]) -> None:
    owner = Owner(user="ada@example.com", team="ml")
    calls = [
        ModelCall(
            adapter="backup", model="gpt-x", usage=Usage(input_tokens=3, output_tokens=2), cost_micros=9
        )
    ]
    for index in range(runs):
        name = run_name(index)
        metrics.runs.seen("team-a", name, "Running")
        metrics.admission_latency.labels("team-a").observe(0.2)
        metrics.queue_wait.labels("team-a").observe(1.5)
        metrics.policy_latency.labels("embedded", "allow").observe(0.001)
        metrics.finished("team-a", "Succeeded", owner, calls)
        metrics.runs.seen("team-a", name, "Succeeded")

        async def failing(namespace: str, name: str) -> None:
            raise RuntimeError(f"run {name} broke")

        with pytest.raises(RuntimeError):
            asyncio.run(metrics.counted("AgentRun", failing)("team-a", name))
    metrics.budget("team-a", "ml-monthly", spent=10, reserved=2, limit=100)


def test_router_metrics_have_no_label_that_names_a_run() -> None:
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    _router_calls(metrics, 3, lambda i: f"run-{i}")
    labels = _label_names(registry)
    assert {"adapter", "provider", "outcome", "direction", "from_adapter", "to_adapter"} <= labels
    assert labels & FORBIDDEN == set()


def test_operator_metrics_have_no_label_that_names_a_run() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    _operator_runs(metrics, 3, lambda i: f"run-{i}")
    labels = _label_names(registry)
    assert {"namespace", "phase", "outcome", "team", "user", "model", "budget", "kind", "error"} <= labels
    assert labels & FORBIDDEN == set()


@pytest.mark.parametrize(
    ("fill", "metrics_class"),
    [(_router_calls, RouterMetrics), (_operator_runs, OperatorMetrics)],
    ids=["router", "operator"],
)
def test_a_thousand_runs_make_no_more_series_than_one(fill: Callable[..., None], metrics_class: type) -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    fill(metrics_class(one), 1, lambda i: f"run-{i}")
    fill(metrics_class(many), 1000, lambda i: f"run-{i}")
    assert _series(one) == _series(many)


@pytest.mark.parametrize(
    "run_name",
    ['evil"} 1\njesus_injected_total 1', "", "x" * 10_000, "run-\u202e-rtl"],
    ids=["exposition injection", "empty", "very long", "bidi"],
)
def test_a_hostile_or_careless_run_name_never_reaches_the_exposition(run_name: str) -> None:
    for metrics_class, fill in ((RouterMetrics, _router_calls), (OperatorMetrics, _operator_runs)):
        registry = CollectorRegistry()
        fill(metrics_class(registry), 2, lambda i: run_name)
        text = generate_latest(registry).decode()
        assert "jesus_injected_total" not in text
        if run_name:
            assert run_name not in text


def test_runs_by_phase_counts_each_run_once_in_its_latest_phase_and_forgets_deleted_ones() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    metrics.runs.seen("a", "r1", "Pending")
    metrics.runs.seen("a", "r1", "Running")
    metrics.runs.seen("a", "r2", "Running")
    metrics.runs.seen("b", "r1", "Waiting")
    metrics.runs.seen("b", "r1", None)
    metrics.runs.seen("b", "gone-before-seen", None)  # careless: a deletion of a run never seen
    values = {
        (s.labels["namespace"], s.labels["phase"]): s.value
        for m in registry.collect()
        if m.name == "jesus_runs"
        for s in m.samples
    }
    assert values[("a", "Running")] == 2
    assert values[("a", "Pending")] == 0  # every phase has a series, zeros too
    assert not any(namespace == "b" for namespace, _ in values)


def test_finished_runs_count_cost_and_tokens_by_team_user_and_model() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    owner = Owner(user="ada@example.com", team="ml")
    calls = [
        ModelCall(adapter="a", model="big", usage=Usage(input_tokens=10, output_tokens=4), cost_micros=100),
        ModelCall(adapter="b", model="small", usage=Usage(input_tokens=1, output_tokens=1), cost_micros=3),
        ModelCall(adapter="a", model="big", cost_micros=50),
    ]
    metrics.finished("ns", "Failed", owner, calls)
    metrics.finished("ns", "Denied", owner, [])  # careless: a denied run made no calls
    sample = registry.get_sample_value
    labels = {"namespace": "ns", "team": "ml", "user": "ada@example.com"}
    assert sample("jesus_run_cost_micros_total", {**labels, "model": "big"}) == 150
    assert sample("jesus_run_cost_micros_total", {**labels, "model": "small"}) == 3
    assert sample("jesus_run_tokens_total", {**labels, "model": "big", "direction": "input"}) == 10
    assert sample("jesus_runs_finished_total", {"namespace": "ns", "outcome": "Denied"}) == 1


def test_breaker_states_are_read_at_every_scrape() -> None:
    from jesus.logic.routing import BreakerStatus

    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    states = {"flaky": BreakerStatus.CLOSED}
    metrics.watch_breakers(lambda: states)
    assert (
        registry.get_sample_value("jesus_router_breaker_state", {"adapter": "flaky", "state": "Closed"}) == 1
    )
    states["flaky"] = BreakerStatus.OPEN
    assert registry.get_sample_value("jesus_router_breaker_state", {"adapter": "flaky", "state": "Open"}) == 1
    assert (
        registry.get_sample_value("jesus_router_breaker_state", {"adapter": "flaky", "state": "Closed"}) == 0
    )


def test_a_failing_reconcile_is_counted_and_raised_and_a_cancelled_one_is_no_error() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)

    async def cancelled(namespace: str, name: str) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(metrics.counted("Budget", cancelled)("a", "b"))
    assert registry.get_sample_value("jesus_reconciles_total", {"kind": "Budget"}) == 1
    assert (
        registry.get_sample_value(
            "jesus_reconcile_errors_total", {"kind": "Budget", "error": "CancelledError"}
        )
        is None
    )


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2026-12-02T11:59:30Z", 30.0),
        ("2026-12-02T12:00:05Z", 0.0),  # a clock skewed into the future: never negative
        (None, None),
        ("", None),
    ],
)
def test_seconds_since_creation(created: str | None, expected: float | None) -> None:
    assert seconds_since(created, NOW) == expected
    assert seconds_since("2026-12-02T11:00:00Z", NOW + timedelta(hours=1)) == 7200.0
