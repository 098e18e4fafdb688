"""ShardLeases against an in-memory Lease API with resourceVersion preconditions: the order of a hand-over
(stop owning, drain, then clear the holder), fencing when renewals fail, conflicts, careless Leases in
the namespace, and AllShards for a replica alone."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from jesus.controllers.shards import AllShards, ShardLeases, ShardOwnership, shard_ownership
from jesus.kube import ConflictError, JsonObject, KubeClient, KubeError, NotFoundError
from jesus.logic.shards import member_lease_name, shard_lease_name, shard_of

NS = "jesus-system"


@dataclass
class LeaseApi:
    """The Lease part of the API server: list, create, replace and delete, with resourceVersions."""

    objects: dict[str, JsonObject] = field(default_factory=dict)
    version: int = 0
    down: bool = False
    writes: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, name, holder)

    def _check(self) -> None:
        if self.down:
            raise KubeError(0, "NoResponse", "connection refused")

    def _stamp(self, obj: JsonObject) -> JsonObject:
        self.version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[stored["metadata"]["name"]] = stored
        holder = (stored.get("spec") or {}).get("holderIdentity") or ""
        return copy.deepcopy(stored) | {"_holder": holder}

    async def list(self, kind: str, namespace: str | None = None) -> list[JsonObject]:
        self._check()
        assert (kind, namespace) == ("Lease", NS)
        return [copy.deepcopy(o) for o in self.objects.values()]

    async def create(self, obj: JsonObject) -> JsonObject:
        self._check()
        name = obj["metadata"]["name"]
        if name in self.objects:
            raise ConflictError(409, "AlreadyExists", name)
        written = self._stamp(obj)
        self.writes.append(("create", name, written.pop("_holder")))
        return written

    async def replace(self, obj: JsonObject) -> JsonObject:
        self._check()
        name = obj["metadata"]["name"]
        current = self.objects.get(name)
        if current is None:
            raise NotFoundError(404, "NotFound", name)
        if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ConflictError(409, "Conflict", name)
        written = self._stamp(obj)
        self.writes.append(("replace", name, written.pop("_holder")))
        return written

    async def delete(self, kind: str, namespace: str | None, name: str, **options: Any) -> bool:
        self._check()
        current = self.objects.get(name)
        if current is None:
            return False
        expected = options.get("resource_version")
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise ConflictError(409, "Conflict", name)
        del self.objects[name]
        self.writes.append(("delete", name, ""))
        return True

    def put(self, name: str, spec: Any) -> None:
        """A Lease written by someone else."""
        self._stamp({"metadata": {"name": name, "namespace": NS}, "spec": spec})

    def holder(self, name: str) -> str:
        return str((self.objects[name].get("spec") or {}).get("holderIdentity") or "")


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def replica(
    api: LeaseApi, identity: str = "op-a", count: int = 4, clock: Clock | None = None
) -> tuple[ShardLeases, list[str]]:
    log: list[str] = []
    leases: ShardLeases

    async def acquired(shard: int) -> None:
        log.append(f"acquired {shard} owned={shard in leases.owned()}")

    async def released(shard: int) -> None:
        # The drain runs while the Lease still names us: nobody else can take the shard yet.
        log.append(
            f"released {shard} owned={shard in leases.owned()} holder={api.holder(shard_lease_name(shard))}"
        )

    leases = ShardLeases(
        cast(KubeClient, api), NS, identity, count, clock or Clock(),
        on_acquired=acquired, on_released=released,
    )  # fmt: skip
    return leases, log


async def test_a_replica_alone_takes_every_shard_and_hands_them_back_on_stop() -> None:
    api = LeaseApi()
    leases, log = replica(api)
    await leases.tick()
    assert leases.owned() == frozenset(range(4))
    assert sorted(log) == [f"acquired {s} owned=True" for s in range(4)]  # owned before being told
    assert api.holder(member_lease_name("op-a")) == "op-a"
    lease = api.objects[shard_lease_name(0)]
    assert lease["spec"]["leaseDurationSeconds"] == 15 and lease["spec"]["leaseTransitions"] == 0
    assert lease["metadata"]["labels"]["app.kubernetes.io/component"] == "operator-shards"
    log.clear()
    await leases.stop()
    assert sorted(log) == [f"released {s} owned=False holder=op-a" for s in range(4)]
    assert all(api.holder(shard_lease_name(s)) == "" for s in range(4))  # cleared after the drain
    assert member_lease_name("op-a") not in api.objects
    assert leases.owned() == frozenset()


async def test_a_replica_announces_its_shard_count_and_waits_for_one_with_another_count() -> None:
    api, clock = LeaseApi(), Clock()
    api.put(member_lease_name("op-old"), {"holderIdentity": "op-old"})
    api.objects[member_lease_name("op-old")]["metadata"]["annotations"] = {"jesus.dev/shards": "2"}
    leases, log = replica(api, clock=clock)
    await leases.tick()
    assert api.objects[member_lease_name("op-a")]["metadata"]["annotations"] == {"jesus.dev/shards": "4"}
    assert leases.owned() == frozenset() and log == []  # op-old divides the runs otherwise: wait
    clock.now += 15  # op-old is gone (it never renewed)
    await leases.tick()
    assert leases.owned() == frozenset(range(4))
    assert member_lease_name("op-old") not in api.objects


async def test_stop_lets_a_pass_in_progress_finish_then_hands_everything_over() -> None:
    api = LeaseApi()
    gate = asyncio.Event()
    leases, log = replica(api, count=2)
    original = leases.on_acquired

    async def slow_acquired(shard: int) -> None:
        await gate.wait()  # the operator re-enqueueing the shard's runs
        await original(shard)

    leases.on_acquired = slow_acquired
    starting = asyncio.create_task(leases.start())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(leases.stop())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not stopping.done()  # waits for the pass, which waits for the callback
    gate.set()
    await starting
    await stopping
    released = [f"released {s} owned=False holder=op-a" for s in range(2)]
    assert sorted(log) == ["acquired 0 owned=True", "acquired 1 owned=True", *released]
    assert all(api.holder(shard_lease_name(s)) == "" for s in range(2))
    assert member_lease_name("op-a") not in api.objects and leases._task is None


async def test_owns_answers_by_the_runs_shard() -> None:
    api = LeaseApi()
    leases, _ = replica(api, count=4)
    await leases.tick()
    mine = {s for s in range(4) if s != 2}
    leases._renewed = {s: leases._renewed[s] for s in mine}  # as if shard 2 were another's
    for i in range(40):
        assert leases.owns("team", f"run-{i}") == (shard_of("team", f"run-{i}", 4) in mine)


async def test_failed_renewals_fence_the_replica_before_anyone_may_take_over() -> None:
    api, clock = LeaseApi(), Clock(100.0)
    leases, log = replica(api, clock=clock)
    await leases.tick()
    api.down = True  # cut off from the API server
    clock.now += 9.9
    assert leases.owned() == frozenset(range(4))
    with pytest.raises(KubeError):
        await leases.tick()
    clock.now += 0.1  # lease_seconds - renew_seconds after the last renewal: stop, whatever the API says
    assert leases.owned() == frozenset() and not leases.owns("team", "run-1")
    api.down = False
    log.clear()
    await leases.tick()  # back: fenced shards are reported lost, then taken again (our Leases still)
    assert sorted(log) == sorted(
        [f"released {s} owned=False holder=op-a" for s in range(4)]
        + [f"acquired {s} owned=True" for s in range(4)]
    )
    assert leases.owned() == frozenset(range(4))


async def test_a_shard_taken_by_another_is_lost_without_a_write() -> None:
    api = LeaseApi()
    leases, log = replica(api)
    await leases.tick()
    name = shard_lease_name(1)
    api.objects[name]["spec"]["holderIdentity"] = "op-b"  # someone overwrote it (say, after a partition)
    api.version += 1
    api.objects[name]["metadata"]["resourceVersion"] = str(api.version)
    log.clear()
    api.writes.clear()
    await leases.tick()
    assert log == ["released 1 owned=False holder=op-b"]
    assert 1 not in leases.owned() and api.holder(name) == "op-b"
    assert ("replace", name, "op-a") not in api.writes


async def test_a_conflict_while_acquiring_leaves_the_shard_alone() -> None:
    api = LeaseApi()
    leases, log = replica(api, count=1)
    original = api.create

    async def racing_create(obj: JsonObject) -> JsonObject:
        if obj["metadata"]["name"] == shard_lease_name(0):
            api.put(shard_lease_name(0), {"holderIdentity": "op-b"})  # another replica won the race
        return await original(obj)

    api.create = racing_create  # type: ignore[method-assign]
    await leases.tick()
    assert leases.owned() == frozenset() and log == []
    assert api.holder(shard_lease_name(0)) == "op-b"


async def test_careless_and_foreign_leases_in_the_namespace_are_survived() -> None:
    api, clock = LeaseApi(), Clock()
    api.put("kube-scheduler", {"holderIdentity": "someone"})  # not ours: never touched
    api.put(shard_lease_name(0), None)  # no spec at all
    api.put(shard_lease_name(1), {"holderIdentity": 42, "leaseTransitions": "many"})
    api.put(shard_lease_name(2), {"holderIdentity": "op-z", "leaseDurationSeconds": 0, "renewTime": "x"})
    api.put(shard_lease_name(9), {"holderIdentity": "op-z"})  # beyond the count
    leases, _ = replica(api, clock=clock)
    await leases.tick()
    assert leases.owned() == frozenset({0, 1, 3})
    clock.now += 14.9
    await leases.tick()
    assert leases.owned() == frozenset({0, 1, 3})  # op-z's duration 0 is read as our own 15 s
    clock.now += 0.1
    await leases.tick()
    assert leases.owned() == frozenset(range(4))
    assert api.objects[shard_lease_name(1)]["spec"]["leaseTransitions"] == 0
    assert api.objects[shard_lease_name(2)]["spec"]["leaseTransitions"] == 1
    assert api.holder("kube-scheduler") == "someone" and api.holder(shard_lease_name(9)) == "op-z"


async def test_our_member_lease_held_by_another_keeps_us_idle_until_it_expires() -> None:
    api, clock = LeaseApi(), Clock()
    api.put(member_lease_name("op-a"), {"holderIdentity": "impostor"})
    leases, log = replica(api, clock=clock)
    await leases.tick()
    assert leases.owned() == frozenset() and log == []
    assert api.holder(member_lease_name("op-a")) == "impostor"
    clock.now += 15  # it never changed: expired, and ours again
    await leases.tick()
    assert api.holder(member_lease_name("op-a")) == "op-a"
    assert leases.owned() == frozenset(range(4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"identity": "Op_A"}, "--identity"),
        ({"identity": ""}, "--identity"),
        ({"count": 0}, "--shards"),
        ({"namespace": ""}, "--lease-namespace"),
        ({"lease_seconds": 8, "renew_seconds": 5}, "twice renew_seconds"),
        ({"renew_seconds": 0}, "twice renew_seconds"),
        ({"lease_seconds": 3600}, "at most 300"),
    ],
)
def test_settings_that_cannot_work_are_refused_by_name(kwargs: dict[str, Any], message: str) -> None:
    async def nothing(_: int) -> None:
        return None

    arguments: dict[str, Any] = {"namespace": NS, "identity": "op-a", "count": 4} | kwargs
    with pytest.raises(ValueError, match=message):
        ShardLeases(
            cast(KubeClient, LeaseApi()), arguments.pop("namespace"), arguments.pop("identity"),
            arguments.pop("count"), Clock(), on_acquired=nothing, on_released=nothing, **arguments,
        )  # fmt: skip


async def test_a_replica_alone_owns_everything_without_the_api() -> None:
    shards: ShardOwnership = AllShards()
    await shards.start()
    assert shards.owns("any", "run") and shards.owned() == frozenset({0})
    await shards.stop()
    assert shards.owns("any", "run")


async def _nothing(_: int) -> None:
    return None


def test_the_flags_choose_all_shards_or_leases() -> None:
    kube = cast(KubeClient, LeaseApi())

    def build(**flags: Any) -> ShardOwnership:
        return shard_ownership(kube, clock=Clock(), on_acquired=_nothing, on_released=_nothing, **flags)

    assert isinstance(build(shards=None, identity=None, lease_namespace=None), AllShards)
    leases = build(shards=3, identity="pod-1", lease_namespace=NS)
    assert isinstance(leases, ShardLeases) and (leases.count, leases.identity, leases.namespace) == (
        3,
        "pod-1",
        NS,
    )
    refused: list[tuple[dict[str, Any], str]] = [
        ({"shards": 3, "identity": None, "lease_namespace": NS}, "--shards needs --identity"),
        ({"shards": 3, "identity": "pod-1", "lease_namespace": ""}, "--shards needs --lease-namespace"),
        ({"shards": None, "identity": "pod-1", "lease_namespace": None}, "need --shards"),
        ({"shards": 0, "identity": "pod-1", "lease_namespace": NS}, "--shards 0 must be"),
    ]
    for flags, message in refused:
        with pytest.raises(ValueError, match=message):
            build(**flags)
