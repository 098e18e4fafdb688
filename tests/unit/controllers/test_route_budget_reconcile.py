"""The RoutePolicy and Budget reconcilers, and the Kopf wiring of every controller, against an
in-memory API server: which adapters of a chain can serve, Budget periods rolling over, and which
handler reconciles what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import kopf
import pytest
from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.cluster import FakeKube, handler, operator_context, sync_cache
from tests.builders.routes import route_policy

from jesus.controllers import agentrun, cache, routepolicy
from jesus.controllers import budget as budget_controller
from jesus.controllers.agentrun.handlers import running, waiting, waiting_for_budget
from jesus.controllers.context import OperatorContext
from jesus.kube import JsonObject, KubeError
from jesus.policy.decision import Decision, PolicyInput

NS = "team"
NOW = datetime(2026, 5, 31, 23, 0, tzinfo=UTC)


class Engine:
    name = "fake"

    async def decide(self, policy_input: PolicyInput) -> Decision:
        return Decision(allow=True, reasons=(), warnings=(), engine="fake")


def ready(adapter: JsonObject, is_ready: bool, reason: str = "AdapterReady", message: str = "") -> JsonObject:
    adapter["status"] = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if is_ready else "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": "2026-05-31T22:00:00Z",
            }
        ]
    }
    return adapter


class World:
    def __init__(self, *objects: JsonObject) -> None:
        self.now = NOW
        self.kube = FakeKube()
        self.context: OperatorContext = operator_context(self.kube, Engine(), lambda: self.now)
        for obj in objects:
            self.kube.put(obj)

    def status(self, kind: str, name: str) -> dict[str, Any]:
        found = self.kube.find(kind, NS, name)
        assert found is not None
        status: dict[str, Any] = found.get("status", {})
        return status

    async def reconcile_policy(self, name: str = "route") -> dict[str, Any]:
        sync_cache(self.context, self.kube)
        await routepolicy.reconcile_route_policy(self.context, NS, name)
        return self.status("RoutePolicy", name)


def condition(status: dict[str, Any], type_: str) -> tuple[str, str, str]:
    found = next(c for c in status["conditions"] if c["type"] == type_)
    return found["status"], found["reason"], found["message"]


async def test_a_chain_with_a_ready_adapter_is_ready_and_names_the_others() -> None:
    world = World(
        ready(scripted_adapter("a", namespace=NS), True),
        ready(scripted_adapter("b", namespace=NS), False, "CredentialsMissing", "Secret k is missing"),
        route_policy(adapters=("missing", "b", "a"), namespace=NS),
    )
    status = await world.reconcile_policy()
    assert status["resolvedChain"] == ["a"]
    assert condition(status, "AdaptersResolved") == (
        "False",
        "AdapterNotFound",
        "chain names ModelAdapters that do not exist: missing",
    )
    assert condition(status, "Ready") == (
        "True",
        "ChainReady",
        "ready adapters: a; not serving: missing (not found); b (CredentialsMissing: Secret k is missing)",
    )
    assert world.kube.events == [("route", "Normal", "ChainReady", condition(status, "Ready")[2])]


async def test_a_chain_without_a_ready_adapter_warns_then_recovers() -> None:
    world = World(scripted_adapter("a", namespace=NS), route_policy(adapters=("a",), namespace=NS))
    status = await world.reconcile_policy()
    assert status["resolvedChain"] == []
    assert condition(status, "Ready") == (
        "False",
        "NoReadyAdapter",
        "no adapter of the chain is ready: a (not yet observed by the operator)",
    )
    assert world.kube.events[-1][1:3] == ("Warning", "NoReadyAdapter")
    world.kube.put(ready(scripted_adapter("a", namespace=NS), True))
    status = await world.reconcile_policy()
    assert status["resolvedChain"] == ["a"]
    assert world.kube.events[-1][1:3] == ("Normal", "ChainReady")


async def test_an_unchanged_policy_is_neither_written_nor_announced_again() -> None:
    world = World(
        ready(scripted_adapter("a", namespace=NS), True), route_policy(adapters=("a",), namespace=NS)
    )
    await world.reconcile_policy()
    version = world.kube.objects[("RoutePolicy", NS, "route")]["metadata"]["resourceVersion"]
    await world.reconcile_policy()
    assert world.kube.objects[("RoutePolicy", NS, "route")]["metadata"]["resourceVersion"] == version
    assert len(world.kube.events) == 1


async def test_a_failed_event_does_not_fail_the_policy_reconcile() -> None:
    world = World(
        ready(scripted_adapter("a", namespace=NS), True), route_policy(adapters=("a",), namespace=NS)
    )

    async def no_events(*_: Any, **__: Any) -> None:
        raise KubeError(500, "InternalError", "events are down")

    world.kube.event = no_events  # type: ignore[method-assign]
    status = await world.reconcile_policy()
    assert status["resolvedChain"] == ["a"]


def body(obj: JsonObject) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, obj))


async def test_an_adapter_event_reconciles_only_the_policies_that_name_it() -> None:
    world = World(
        ready(scripted_adapter("a", namespace=NS), True),
        route_policy("uses-a", adapters=("a",), namespace=NS),
        route_policy("uses-b", adapters=("b",), namespace=NS),
    )
    sync_cache(world.context, world.kube)
    registry = kopf.OperatorRegistry()
    routepolicy.register(registry, world.context)
    adapter = world.kube.find("ModelAdapter", NS, "a")
    assert adapter is not None
    await handler(registry, "routepolicy-adapter-event")(body=body(adapter))
    assert world.status("RoutePolicy", "uses-a")["resolvedChain"] == ["a"]
    assert world.status("RoutePolicy", "uses-b") == {}
    await handler(registry, "routepolicy-create")(namespace=NS, name="uses-b")
    assert condition(world.status("RoutePolicy", "uses-b"), "Ready")[:2] == ("False", "NoReadyAdapter")


async def test_the_policy_handlers_turn_api_failures_into_retries() -> None:
    world = World(route_policy(namespace=NS))
    registry = kopf.OperatorRegistry()
    routepolicy.register(registry, world.context)

    async def broken(*_: Any, **__: Any) -> None:
        raise KubeError(503, "ServiceUnavailable", "try later")

    world.kube.get = broken  # type: ignore[method-assign]
    with pytest.raises(kopf.TemporaryError, match=r"API request failed: .*try later"):
        await handler(registry, "routepolicy-resync")(namespace=NS, name="route")


async def test_a_budget_reconcile_writes_its_figures_and_rolls_the_period_over() -> None:
    world = World(budget(namespace=NS, limit="10.00"))
    await budget_controller.reconcile_budget(world.context, NS, "budget")
    status = world.status("Budget", "budget")
    assert (status["spentMicros"], status["reservedMicros"], status["remainingMicros"]) == (0, 0, 10_000_000)
    assert status["periodStart"] == "2026-05-31T00:00:00Z"
    first = world.kube.objects[("Budget", NS, "budget")]["metadata"]["resourceVersion"]

    await budget_controller.reconcile_budget(world.context, NS, "budget")  # same day: nothing to write
    assert world.kube.objects[("Budget", NS, "budget")]["metadata"]["resourceVersion"] == first

    world.now = NOW + timedelta(hours=2)  # past midnight: a new daily period
    await budget_controller.reconcile_budget(world.context, NS, "budget")
    assert world.status("Budget", "budget")["periodStart"] == "2026-06-01T00:00:00Z"


async def test_a_budget_that_is_gone_or_unreachable() -> None:
    world = World()
    await budget_controller.reconcile_budget(world.context, NS, "gone")  # nothing to do, no error
    assert world.kube.objects == {}

    async def broken(*_: Any, **__: Any) -> None:
        raise KubeError(503, "ServiceUnavailable", "etcd is slow")

    world.kube.get = broken  # type: ignore[method-assign]
    registry = kopf.OperatorRegistry()
    budget_controller.register(registry, world.context)
    with pytest.raises(kopf.TemporaryError, match="etcd is slow"):
        await handler(registry, "budget-create")(namespace=NS, name="budget")


async def test_the_cache_follows_watch_events_and_forgets_deleted_objects() -> None:
    world = World()
    registry = kopf.OperatorRegistry()
    cache.register(registry, world.context)
    on_adapter = handler(registry, "cache-modeladapters")
    on_adapter(type="ADDED", body=body(scripted_adapter("a", namespace=NS)))
    assert list(world.context.cache.adapters.by_name(NS)) == ["a"]
    on_adapter(type="DELETED", body=body(scripted_adapter("a", namespace=NS)))
    assert world.context.cache.adapters.by_name(NS) == {}


async def test_a_runs_events_go_through_the_queue_and_its_deletion_gives_back_its_hold() -> None:
    world = World(
        ready(scripted_adapter(namespace=NS), True),
        route_policy(namespace=NS),
        budget(namespace=NS),
        agent_run(namespace=NS),
    )
    sync_cache(world.context, world.kube)
    registry = kopf.OperatorRegistry()
    agentrun.register(registry, world.context)
    queue = world.context.run_queue
    assert queue is not None
    queue.start()
    try:
        run = world.kube.find("AgentRun", NS, "run")
        assert run is not None
        on_run = handler(registry, "agentrun-event")
        await on_run(type="ADDED", body=body(run))
        await queue.idle()
        status = world.status("AgentRun", "run")
        assert status["phase"] == "Running"
        assert running(status) and not waiting(status) and not waiting_for_budget(status)
        written = world.kube.find("AgentRun", NS, "run")
        assert written is not None
        # The operator's own status write coming back is not decided again, only looked at later.
        versions = {k: o["metadata"]["resourceVersion"] for k, o in world.kube.objects.items()}
        await on_run(type="MODIFIED", body=body(written))
        await queue.idle()
        assert {k: o["metadata"]["resourceVersion"] for k, o in world.kube.objects.items()} == versions
        assert queue.scheduled((NS, "run")) is not None  # running: the slow safety look
        # Safety looks start from the run as last seen: two in a row read the run's Job, not the run.
        job = world.kube.find("Job", NS, status["jobName"])
        assert job is not None
        job["status"] = {"active": 1}  # as the Job controller says of a Job whose pod runs
        world.kube.put(job)
        reads: list[str] = []
        real_get = world.kube.get

        async def counted_get(kind: str, namespace: str | None, name: str) -> JsonObject | None:
            reads.append(kind)
            return await real_get(kind, namespace, name)

        world.kube.get = counted_get  # type: ignore[method-assign]
        for _ in range(2):
            queue.requeue([(NS, "run")])
            await queue.idle()
        assert "AgentRun" not in reads, reads
        world.kube.get = real_get  # type: ignore[method-assign]
        # The Job's end, queued while the last-seen run is kept: the run is decided on, not skipped as
        # an echo of our own write.
        job = world.kube.find("Job", NS, status["jobName"])
        assert job is not None
        assert world.status("AgentRun", "run")["phase"] == "Running"
        job["status"] = {"conditions": [{"type": "Failed", "status": "True"}]}
        world.kube.put(job)
        queue.add((NS, "run"))
        await queue.idle()
        assert world.status("AgentRun", "run")["phase"] == "Failed"

        versions = {k: o["metadata"]["resourceVersion"] for k, o in world.kube.objects.items()}
        budget_obj = world.kube.find("Budget", NS, "budget")
        assert budget_obj is not None
        await handler(registry, "agentrun-budget-wake")(type="DELETED", body=body(budget_obj))
        assert {k: o["metadata"]["resourceVersion"] for k, o in world.kube.objects.items()} == versions

        # Deleting the run (no finalizer: its DELETED event) releases its hold on the Budget.
        await on_run(type="DELETED", body=body(written))
        assert world.status("Budget", "budget")["reservedMicros"] == 0
        assert (NS, "run") not in queue.known()
        assert queue.scheduled((NS, "run")) is None
    finally:
        await queue.stop()


def test_which_runs_the_timers_look_at() -> None:
    exceeded = {"type": "BudgetReserved", "status": "False", "reason": "BudgetExceeded"}
    assert waiting_for_budget({"phase": "Waiting", "conditions": [exceeded]})
    assert waiting({"phase": "Waiting", "conditions": [exceeded]})
    assert not waiting_for_budget({"phase": "Waiting", "conditions": []})
    assert not waiting({})  # no status yet: the create handler decides first
    assert waiting({"phase": "Failed", "budgetReservations": [{"settled": False}]})
    assert not waiting({"phase": "Failed", "budgetReservations": [{"settled": True}]})
    assert running({"phase": "Admitted"}) and not running({"phase": "Succeeded"})
