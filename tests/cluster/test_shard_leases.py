"""Two operator replicas split four shards through real Leases: never both owning one, a clean stop
hands over at once, a killed replica's shards move only after a lease duration on the survivor's clock;
and the chart's Role grants those Lease verbs in the release namespace only.

The clocks are injected (each replica its own, far apart), and the passes are driven by the test, so
nothing here sleeps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from tests.cluster.test_chart import one, render

from jesus.controllers.shards import ShardLeases
from jesus.devcluster import ControlPlane
from jesus.kube import KubeClient
from jesus.logic.shards import member_lease_name, shard_lease_name

LEASE = 15.0
RENEW = 5.0


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Replica:
    leases: ShardLeases
    clock: Clock
    events: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture
async def kube(control_plane: ControlPlane) -> KubeClient:
    return await KubeClient.connect(str(control_plane.kubeconfig))


def two_replicas(kube: KubeClient, namespace: str) -> tuple[Replica, Replica]:
    replicas: list[Replica] = []

    def replica(identity: str, start: float) -> Replica:
        clock = Clock(start)
        events: list[tuple[str, int]] = []

        async def acquired(shard: int) -> None:
            # Taking a shard while the other replica still owns it is what must never happen (recorded:
            # ShardLeases logs a callback's exception and goes on).
            others = [r for r in replicas if r.clock is not clock]
            if any(shard in r.leases.owned() for r in others):
                events.append(("overlapped", shard))
            events.append(("acquired", shard))

        async def released(shard: int) -> None:
            events.append(("released", shard))

        leases = ShardLeases(
            kube, namespace, identity, 4, clock,
            lease_seconds=LEASE, renew_seconds=RENEW, on_acquired=acquired, on_released=released,
        )  # fmt: skip
        return Replica(leases, clock, events)

    replicas += [replica("operator-a", 1_000.0), replica("operator-b", -7_200_000.0)]  # far-apart clocks
    return replicas[0], replicas[1]


async def step(seconds: float, *ticking: Replica) -> None:
    """Advance every clock by `seconds`, then one pass of each ticking replica; no shard is owned twice."""
    for replica in ticking:
        replica.clock.now += seconds
    for replica in ticking:
        await replica.leases.tick()
    a, b = ticking[0], ticking[-1]
    assert not a.leases.owned() & b.leases.owned() or a is b
    assert not [e for r in ticking for e in r.events if e[0] == "overlapped"]


async def split(a: Replica, b: Replica, *, start: bool) -> None:
    """a alone first, then b; `start`: through start() (a pass, then the loop), else one pass each."""
    await (a.leases.start() if start else a.leases.tick())
    assert a.leases.owned() == frozenset(range(4))  # alone at first: everything
    await (b.leases.start() if start else b.leases.tick())
    for _ in range(3):
        await step(RENEW, a, b)
    assert (len(a.leases.owned()), len(b.leases.owned())) == (2, 2)


async def test_two_replicas_split_the_shards_and_a_clean_stop_hands_over_at_once(
    kube: KubeClient, namespace: str
) -> None:
    a, b = two_replicas(kube, namespace)
    try:
        await split(a, b, start=True)
        moved = set(b.leases.owned())
        assert sorted(a.events[:4]) == [("acquired", shard) for shard in range(4)]
        assert sorted(s for e, s in a.events if e == "released") == sorted(moved)
        assert all(a.leases.owns("ns", f"run-{i}") != b.leases.owns("ns", f"run-{i}") for i in range(50))
        await b.leases.stop()
        assert b.leases.owned() == frozenset()
        assert sorted(s for e, s in b.events if e == "released") == sorted(moved)
        assert await kube.get("Lease", namespace, member_lease_name("operator-b")) is None
        for shard in moved:
            lease = await kube.get("Lease", namespace, shard_lease_name(shard))
            assert lease is not None and "holderIdentity" not in lease["spec"]
        await step(0.1, a)  # no waiting for expiry: the holders were cleared
        assert a.leases.owned() == frozenset(range(4))
    finally:
        await a.leases.stop()
        await b.leases.stop()


async def test_a_killed_replicas_shards_move_only_after_a_lease_duration(
    kube: KubeClient, namespace: str
) -> None:
    a, b = two_replicas(kube, namespace)
    try:
        await split(a, b, start=False)
        await step(RENEW, a, b)
        orphaned = set(b.leases.owned())
        # b is killed here: it makes no more passes and releases nothing.
        killed_at = a.clock.now
        while len(a.leases.owned()) < 4:
            b.clock.now += 1.0
            await step(1.0, a)
            if b.leases.owned():
                assert not b.leases.owned() & a.leases.owned()
            assert a.clock.now - killed_at <= LEASE + RENEW, "the survivor never took over"
        # a saw b's last renewal at killed_at at the earliest: no takeover before a lease duration.
        assert a.clock.now - killed_at >= LEASE
        assert not [e for e in a.events if e[0] == "overlapped"]
        assert b.leases.owned() == frozenset()  # b fenced itself before that
        assert sorted(s for e, s in a.events[-len(orphaned) :]) == sorted(orphaned)
        assert await kube.get("Lease", namespace, member_lease_name("operator-b")) is None
    finally:
        await a.leases.stop()


def test_the_charts_role_grants_what_shard_leases_do_in_its_namespace_only(
    control_plane: ControlPlane, namespace: str
) -> None:
    manifests = render("operator.shards=4", namespace=namespace)
    for kind in ("Role", "RoleBinding"):
        control_plane.kubectl(
            "apply", "-f", "-", input=json.dumps(one(manifests, kind, "jesus-operator-shards"))
        )
    who = f"--as=system:serviceaccount:{namespace}:jesus-operator"

    def can(verb: str, where: str) -> str:
        return control_plane.kubectl(
            "auth", "can-i", verb, "leases.coordination.k8s.io", "-n", where, who, check=False
        ).stdout.strip()

    # ShardLeases lists, creates, replaces (update) and deletes; nothing else, and only here.
    assert [can(verb, namespace) for verb in ("list", "get", "create", "update", "delete")] == ["yes"] * 5
    assert [can(verb, namespace) for verb in ("patch", "deletecollection")] == ["no", "no"]
    assert can("list", "kube-system") == "no"
