"""How the operator is assembled: every controller's handlers in one registry, Kopf's settings, the
policy engine it is given, its metrics, and the router registration failing in a way the run waits on."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import kopf
import pytest
from prometheus_client import CollectorRegistry
from tests.builders.agentrun import agent_run
from tests.builders.cluster import FakeKube, operator_context

from jesus.api import AgentRun
from jesus.controllers.app import OperatorOptions, build_policy_engine, build_registry
from jesus.controllers.metrics import OperatorMetrics
from jesus.controllers.router_admin import RouterAdminClient, RouterRegistrationError
from jesus.policy.embedded import EmbeddedEngine
from jesus.policy.opa_server import OpaServerEngine

REPO = Path(__file__).resolve().parents[3]


class Engine:
    name = "unused"

    async def decide(self, policy_input: object) -> object:
        raise AssertionError("not asked")


def handler_ids(registry: kopf.OperatorRegistry) -> set[str]:
    groups = (registry._changing, registry._watching, registry._spawning, registry._activities)
    return {str(h.id) for group in groups for h in group.get_all_handlers()}


def test_the_registry_holds_every_controller_and_the_settings() -> None:
    context = operator_context(FakeKube(), Engine(), lambda: datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
    registry = build_registry(context, OperatorOptions(worker_limit=17))
    ids = handler_ids(registry)
    for expected in (
        "cache-budgets",
        "agentrun-event",
        "agentrun-queue",
        "budget-resync",
        "modeladapter-deployment-event",
        "routepolicy-adapter-event",
        "login",
        "settings",
    ):
        assert expected in ids, expected

    # AgentRuns have no change handler, no timer and no deletion handler: nothing that makes Kopf put
    # its finalizer or its last-handled annotation on a run (two writes per run, issue 20).
    run_handlers = [
        h
        for group in (registry._changing, registry._spawning)
        for h in group.get_all_handlers()
        if str(h.id).startswith("agentrun")
    ]
    assert run_handlers == []
    assert context.run_queue is not None

    (configure,) = [h for h in registry._activities.get_all_handlers() if h.id == "settings"]
    settings = kopf.OperatorSettings()
    configure.fn(settings=settings)
    assert settings.persistence.finalizer == "jesus.dev/finalizer"
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.queueing.worker_limit == 17
    assert settings.networking.error_backoffs == [1, 2, 5, 10, 30]


def test_runner_jobs_come_through_kopf_only_with_kopf_peering() -> None:
    """Kopf watches every Job and filters by label afterwards; the operator's own watch asks the API
    server for runner Jobs only. Under Kopf peering a standby replica must hear nothing, and only
    Kopf's watches pause, so there the Jobs go through Kopf."""
    for peering in (False, True):
        context = operator_context(FakeKube(), Engine(), lambda: datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
        context.peering = peering
        jobs = [
            h
            for h in build_registry(context, OperatorOptions())._watching.get_all_handlers()
            if "jobs" in str(h.selector)
        ]
        assert [str(h.id) for h in jobs] == (["agentrun-job-event"] if peering else []), peering
    # Through Kopf, a finished runner Job queues its run as the operator's own watch would.
    finished = {
        "kind": "Job",
        "metadata": {
            "name": "run-a1",
            "namespace": "ns",
            "ownerReferences": [{"kind": "AgentRun", "name": "run"}],
        },
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    asyncio.run(jobs[0].fn(type="MODIFIED", body=kopf.Body(finished)))  # type: ignore[call-arg]
    assert context.run_queue is not None and context.run_queue.known() == {("ns", "run")}


def test_the_policy_engine_is_the_opa_sidecar_when_given_else_embedded() -> None:
    assert isinstance(build_policy_engine(OperatorOptions(opa_url="http://127.0.0.1:8181")), OpaServerEngine)
    assert isinstance(build_policy_engine(OperatorOptions(policy_dir=REPO / "policies")), EmbeddedEngine)


def test_budget_figures_are_exported_by_namespace_and_name() -> None:
    registry = CollectorRegistry()
    OperatorMetrics(registry).budget("team", "monthly", spent=5, reserved=7, limit=100)
    labels = {"namespace": "team", "budget": "monthly"}
    assert registry.get_sample_value("jesus_budget_spent_micros", labels) == 5
    assert registry.get_sample_value("jesus_budget_reserved_micros", labels) == 7
    assert registry.get_sample_value("jesus_budget_limit_micros", labels) == 100


async def test_an_unreachable_router_is_a_registration_error_the_run_waits_on() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nobody listens there
    admin = RouterAdminClient(f"http://127.0.0.1:{port}/", "admin-token", timeout_seconds=2)
    run = AgentRun.model_validate(agent_run(namespace="team"))
    with pytest.raises(RouterRegistrationError, match="the router is unreachable"):
        await admin.register(run)
    await admin.aclose()
