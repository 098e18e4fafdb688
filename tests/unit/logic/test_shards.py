"""The shard decision: a run's shard, Leases as careless and hostile writers leave them, expiry on our
own clock, and the fair split, proved on a small simulation of replicas that tick, die, come back and
disagree about the time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from jesus.logic.shards import (
    MAX_LEASE_SECONDS,
    LeaseRecord,
    Seen,
    check_count,
    check_identity,
    member_lease_name,
    observe,
    plan_shards,
    read_lease,
    shard_index,
    shard_lease_name,
    shard_of,
)

LEASE = 15.0
RENEW = 5.0
FENCE = LEASE - RENEW


def lease(name: str, version: str = "1", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}, "spec": spec}


# A run's shard.


def test_a_runs_shard_is_a_stable_sha256_of_namespace_and_name() -> None:
    # The first 8 bytes of sha256("namespace/name"), big-endian, modulo the count: pinned, so another
    # process, another Python and another day put a run in the same shard.
    assert [shard_of("team-a", f"run-{i}", 4) for i in range(6)] == [1, 0, 1, 0, 3, 3]
    assert shard_of("team-a", "run-0", 1000) == 489
    assert shard_of("team-a", "run-0", 1) == 0
    spread = Counter(shard_of("ns", f"run-{i}", 4) for i in range(4000))
    assert set(spread) == {0, 1, 2, 3}
    assert all(900 <= n <= 1100 for n in spread.values()), spread


@pytest.mark.parametrize("count", [0, -1])
def test_a_shard_count_below_one_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("ns", "run", count)


def test_hostile_names_still_have_a_shard() -> None:
    for namespace, name in [("", ""), ("ns", "\x00🚀\ud800" * 100), ("ns", "x" * 100_000)]:
        assert 0 <= shard_of(namespace, name, 3) < 3


@pytest.mark.parametrize("identity", ["", "Pod-A", "a_b", "-a", "a-", "a" * 300, "ä", "a b", "a/b"])
def test_an_identity_that_cannot_name_a_lease_is_refused_by_name(identity: str) -> None:
    with pytest.raises(ValueError, match="--identity"):
        check_identity(identity)


def test_a_pod_name_is_an_identity() -> None:
    assert check_identity("jesus-operator-7d9f8c-x2x9q") == "jesus-operator-7d9f8c-x2x9q"


@pytest.mark.parametrize("count", [0, -3, 1025, True, 2.0])
def test_a_shard_count_out_of_range_is_refused_by_flag(count: Any) -> None:
    with pytest.raises(ValueError, match="--shards"):
        check_count(count)


def test_shard_lease_names_are_canonical_and_within_the_count() -> None:
    assert shard_index(shard_lease_name(3), 4) == 3
    for name in ["jesus-operator-shard-4", "jesus-operator-shard-01", "jesus-operator-shard--1",
                 "jesus-operator-shard-", "jesus-operator-shard-x", "jesus-operator-shard-٣",
                 "other-shard-1", member_lease_name("a")]:  # fmt: skip
        assert shard_index(name, 4) is None, name


# Leases as careless and hostile writers leave them.


@pytest.mark.parametrize(
    ("spec", "holder", "duration"),
    [
        ({"holderIdentity": "a", "leaseDurationSeconds": 15}, "a", LEASE),
        ({}, "", LEASE),  # holder missing
        ({"holderIdentity": None}, "", LEASE),
        ({"holderIdentity": 7}, "", LEASE),
        ({"holderIdentity": "a", "leaseDurationSeconds": 0}, "a", LEASE),  # cannot hurry a takeover
        ({"holderIdentity": "a", "leaseDurationSeconds": -40}, "a", LEASE),
        ({"holderIdentity": "a", "leaseDurationSeconds": 10**12}, "a", MAX_LEASE_SECONDS),  # nor stop one
        ({"holderIdentity": "a", "leaseDurationSeconds": float("inf")}, "a", LEASE),
        ({"holderIdentity": "a", "leaseDurationSeconds": float("nan")}, "a", LEASE),
        ({"holderIdentity": "a", "leaseDurationSeconds": "15"}, "a", LEASE),
        ({"holderIdentity": "a", "leaseDurationSeconds": True}, "a", LEASE),
        ({"holderIdentity": "a", "leaseDurationSeconds": 60}, "a", 60.0),
        ({"holderIdentity": "a", "renewTime": "yesterday", "acquireTime": 12}, "a", LEASE),
    ],
)
def test_careless_lease_contents_are_read_safely(spec: dict[str, Any], holder: str, duration: float) -> None:
    record = read_lease(lease("l", **spec), LEASE)
    assert record == LeaseRecord("l", "1", holder, duration)


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"metadata": None},
        {"metadata": {"name": "l"}},
        {"metadata": {"resourceVersion": "1"}},
        {"metadata": {"name": 3, "resourceVersion": "1"}},
    ],
)
def test_a_lease_without_name_or_version_is_not_read(obj: dict[str, Any]) -> None:
    assert read_lease(obj, LEASE) is None


def test_a_lease_with_a_garbage_spec_has_no_holder() -> None:
    assert read_lease({"metadata": {"name": "l", "resourceVersion": "9"}, "spec": "x"}, LEASE) == (
        LeaseRecord("l", "9", "", LEASE)
    )


# Expiry on our own clock.


def test_a_version_unchanged_keeps_the_moment_it_was_first_seen() -> None:
    first = observe({}, [LeaseRecord("l", "1", "a", LEASE)], 100.0)
    later = observe(first, [LeaseRecord("l", "1", "a", LEASE)], 114.9)
    assert later["l"].since == 100.0 and later["l"].live(114.9) and not later["l"].live(115.0)
    renewed = observe(later, [LeaseRecord("l", "2", "a", LEASE)], 116.0)
    assert renewed["l"] == Seen(LeaseRecord("l", "2", "a", LEASE), 116.0, renewed=True)
    taken = observe(renewed, [LeaseRecord("l", "3", "b", LEASE)], 117.0)
    assert taken["l"] == Seen(LeaseRecord("l", "3", "b", LEASE), 117.0, renewed=False)
    assert observe(taken, [], 118.0) == {}


def test_a_lease_without_holder_is_never_live() -> None:
    seen = observe({}, [LeaseRecord("l", "1", "", LEASE)], 0.0)["l"]
    assert not seen.live(0.0)


# The simulation: replicas that read all Leases, renew, plan and write with resourceVersion
# preconditions, as jesus.controllers.shards does, on clocks of their own.


@dataclass
class StoredLease:
    version: int
    holder: str
    duration: Any = 15


@dataclass
class Replica:
    identity: str
    offset: float = 0.0  # this replica's monotonic clock minus the simulation's
    seen: dict[str, Seen] = field(default_factory=dict)
    renewed: dict[int, float] = field(default_factory=dict)  # shard -> our clock at the last renewal
    alive: bool = True  # False: it stops ticking (killed or cut off), without releasing anything
    every: float = RENEW  # how often it ticks
    next_tick: float = 0.0

    def owned(self, now: float) -> frozenset[int]:
        """What `owns` answers at simulation time `now`: fenced by our own last renewal."""
        local = now + self.offset
        return frozenset(s for s, at in self.renewed.items() if local - at < FENCE)


@dataclass
class Cluster:
    count: int
    leases: dict[str, StoredLease] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    now: float = 0.0
    versions: int = 0

    def write(self, name: str, holder: str, expected: int | None) -> bool:
        current = self.leases.get(name)
        if (current.version if current else None) != expected:
            return False  # 409: someone else moved
        self.versions += 1
        self.leases[name] = StoredLease(self.versions, holder)
        return True

    def tick(self, replica: Replica) -> None:
        if not replica.alive:
            return
        local = self.now + replica.offset
        read = {name: (stored.version, stored.holder) for name, stored in self.leases.items()}
        records = [
            read_lease(
                lease(n, str(s.version), holderIdentity=s.holder, leaseDurationSeconds=s.duration), LEASE
            )
            for n, s in self.leases.items()
        ]
        replica.seen = observe(replica.seen, [r for r in records if r is not None], local)
        member = member_lease_name(replica.identity)
        mine = replica.seen.get(member)
        if mine is None or mine.record.holder == replica.identity or not mine.live(local):
            self.write(member, replica.identity, read[member][0] if member in read else None)
        for shard in list(replica.renewed):
            name = shard_lease_name(shard)
            ours = shard in replica.owned(self.now) and read.get(name, (0, ""))[1] == replica.identity
            if ours and self.write(name, replica.identity, read[name][0]):
                replica.renewed[shard] = local
        for shard in set(replica.renewed) - replica.owned(self.now):
            del replica.renewed[shard]  # fenced: the controller tells the lead it lost the shard
        plan = plan_shards(
            identity=replica.identity,
            count=self.count,
            owned=replica.owned(self.now),
            members={n: s for n, s in replica.seen.items() if n.startswith("jesus-operator-member-")},
            shards={n: s for n, s in replica.seen.items() if n.startswith("jesus-operator-shard-")},
            now=local,
        )
        for shard in plan.lost:
            replica.renewed.pop(shard, None)
        for shard in plan.release:
            replica.renewed.pop(shard, None)
            name = shard_lease_name(shard)
            self.write(name, "", self.leases[name].version)
        for shard in plan.acquire:
            name = shard_lease_name(shard)
            if self.write(name, replica.identity, read[name][0] if name in read else None):
                replica.renewed[shard] = local
        for name in plan.expired_members:
            if name in self.leases and read.get(name, (None,))[0] == self.leases[name].version:
                del self.leases[name]

    def run(self, seconds: float, step: float = 1.0) -> None:
        """Advance time; each replica ticks every `every` seconds (the first ones staggered by a
        second); after every step no shard has two owners."""
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + step, 6)
            for i, replica in enumerate(self.replicas):
                if replica.next_tick == 0.0:
                    replica.next_tick = self.now + i
                if self.now >= replica.next_tick - 1e-9:
                    replica.next_tick = self.now + replica.every
                    self.tick(replica)
                self.assert_no_overlap()

    def assert_no_overlap(self) -> None:
        owners: Counter[int] = Counter()
        for replica in self.replicas:  # one that stopped ticking (partitioned) still counts
            owners.update(replica.owned(self.now))
        assert all(n == 1 for n in owners.values()), (self.now, owners)

    def split(self) -> list[int]:
        return [len(r.owned(self.now)) for r in self.replicas]


def cluster(count: int, *identities: str, offsets: tuple[float, ...] = ()) -> Cluster:
    sim = Cluster(count)
    for i, identity in enumerate(identities):
        sim.replicas.append(Replica(identity, offsets[i] if i < len(offsets) else 0.0))
    return sim


@pytest.mark.parametrize(
    ("members", "expected"), [(1, [4]), (2, [2, 2]), (3, [1, 1, 2]), (4, [1, 1, 1, 1]), (5, [0, 1, 1, 1, 1])]
)
def test_live_members_split_the_shards_fairly(members: int, expected: list[int]) -> None:
    sim = cluster(4, *(f"op-{i}" for i in range(members)))
    sim.run(60)
    assert sorted(sim.split()) == expected
    owned = [s for r in sim.replicas for s in r.owned(sim.now)]
    assert sorted(owned) == [0, 1, 2, 3]  # every shard owned, each once
    before = {r.identity: r.owned(sim.now) for r in sim.replicas}
    sim.run(60)
    assert {r.identity: r.owned(sim.now) for r in sim.replicas} == before  # settled: no churn


def test_one_replica_takes_every_shard_on_its_first_pass() -> None:
    sim = cluster(8, "solo")
    sim.tick(sim.replicas[0])
    assert sim.replicas[0].owned(sim.now) == frozenset(range(8))


def test_a_dead_replicas_shards_are_taken_only_after_a_lease_duration_on_our_clock() -> None:
    sim = cluster(4, "a", "b")
    sim.run(60)
    a, b = sim.replicas
    assert sim.split() == [2, 2]
    b.alive = False  # killed: no release, its Leases stay as they were
    died = sim.now
    taken_at = None
    while taken_at is None:
        sim.run(1)
        if len(a.owned(sim.now)) == 4:
            taken_at = sim.now
    # b's last renewal was at most RENEW before it died; a took over no sooner than LEASE after that.
    assert died - RENEW + LEASE <= taken_at <= died + LEASE + 2 * RENEW
    assert member_lease_name("b") not in sim.leases  # the dead member's Lease was cleaned up


def test_a_replica_that_comes_back_gets_its_share_again() -> None:
    sim = cluster(4, "a", "b")
    sim.run(60)
    sim.replicas[1].alive = False
    sim.run(60)
    assert sim.split()[0] == 4
    sim.replicas[1] = Replica("b")  # restarted: nothing remembered
    sim.run(60)
    assert sim.split() == [2, 2]


@pytest.mark.parametrize("offsets", [(0.0, 86_400.0), (-3.7e6, 12.5), (1e9, -1e9)])
def test_skewed_clocks_never_give_one_shard_two_owners(offsets: tuple[float, float]) -> None:
    sim = cluster(4, "a", "b", offsets=offsets)
    sim.replicas[1].every = 0.5  # an eager reader: sees each renewal at once, takes over at the first instant
    sim.run(60, step=0.5)
    assert sim.split() == [2, 2]
    sim.replicas[0].alive = False
    sim.run(60, step=0.5)  # run() asserts no overlap after every step
    assert sim.split()[1] == 4


def test_a_partitioned_owner_stops_before_anyone_may_take_over() -> None:
    sim = cluster(4, "a", "b")
    sim.run(60)
    a, b = sim.replicas
    b.every = 0.5  # sees a's last renewal at once
    partitioned_at = sim.now
    a.alive = False  # cut off from the API server: it cannot renew, and nobody tells it
    while len(b.owned(sim.now)) < 4:
        sim.run(0.5, step=0.5)  # run() asserts that a has stopped owning before b owns
    assert a.owned(sim.now) == frozenset()
    assert sim.now - partitioned_at >= LEASE - RENEW


def test_a_stale_member_lease_never_makes_a_replica_give_up_work() -> None:
    sim = cluster(4, "a")
    sim.leases[member_lease_name("ghost")] = StoredLease(100, "ghost")
    sim.versions = 100
    sim.run(5)
    assert sim.split() == [2]  # "ghost" may be alive: take no more than a share of two
    sim.run(LEASE + RENEW)
    assert sim.split() == [4]  # it never renewed: gone, and its Lease deleted
    assert member_lease_name("ghost") not in sim.leases


def test_our_member_lease_held_live_by_another_blocks_us_until_it_goes_quiet() -> None:
    sim = cluster(4, "a")
    sim.run(10)
    assert sim.split() == [4]
    # Someone writes our member Lease as theirs, and keeps writing it.
    for _ in range(3):
        sim.write(member_lease_name("a"), "impostor", sim.leases[member_lease_name("a")].version)
        sim.run(5)
    assert sim.split() == [0]
    sim.run(LEASE + RENEW)  # the impostor went quiet: the Lease expires, we write it back
    assert sim.split() == [4]
    assert sim.leases[member_lease_name("a")].holder == "a"


def test_a_shard_held_by_an_intruder_with_a_huge_duration_is_taken_after_the_cap() -> None:
    sim = cluster(2, "a")
    sim.leases[shard_lease_name(1)] = StoredLease(100, "intruder", duration=10**9)
    sim.versions = 100
    sim.run(MAX_LEASE_SECONDS - 10)
    assert sim.replicas[0].owned(sim.now) == frozenset({0})
    sim.run(20)
    assert sim.replicas[0].owned(sim.now) == frozenset({0, 1})


def test_a_shard_lease_with_no_holder_is_free_at_once() -> None:
    sim = cluster(2, "a")
    sim.leases[shard_lease_name(0)] = StoredLease(100, "")
    sim.versions = 100
    sim.tick(sim.replicas[0])
    assert sim.replicas[0].owned(sim.now) == frozenset({0, 1})


def test_a_shard_taken_over_while_we_thought_we_owned_it_is_lost_at_once() -> None:
    seen = observe({}, [LeaseRecord(shard_lease_name(0), "7", "b", LEASE)], 0.0)
    plan = plan_shards(identity="a", count=2, owned=frozenset({0}), members={}, shards=seen, now=0.0)
    assert plan.lost == (0,) and 0 not in plan.acquire and plan.acquire == (1,)


def test_a_deleted_shard_lease_is_lost_and_taken_again_next_pass() -> None:
    plan = plan_shards(identity="a", count=1, owned=frozenset({0}), members={}, shards={}, now=0.0)
    assert (plan.lost, plan.acquire) == ((0,), ())
    plan = plan_shards(identity="a", count=1, owned=frozenset(), members={}, shards={}, now=0.0)
    assert plan.acquire == (0,)


def test_a_member_lease_named_for_someone_else_is_no_member() -> None:
    members = observe({}, [LeaseRecord(member_lease_name("b"), "1", "c", LEASE)], 0.0)
    plan = plan_shards(identity="a", count=4, owned=frozenset(), members=members, shards={}, now=1.0)
    assert plan.members == ("a",) and len(plan.acquire) == 4


@pytest.mark.parametrize(("value", "shards"), [("8", 8), ("x", None), (8, None), ("٣", None), ("", None)])
def test_a_member_leases_shard_count_is_read_only_when_it_is_a_count(value: Any, shards: int | None) -> None:
    obj = lease(member_lease_name("b"), holderIdentity="b")
    obj["metadata"]["annotations"] = {"jesus.dev/shards": value}
    record = read_lease(obj, LEASE)
    assert record is not None and record.shards == shards


def test_a_live_member_with_another_shard_count_makes_us_own_nothing_until_it_is_gone() -> None:
    other = LeaseRecord(member_lease_name("b"), "1", "b", LEASE, shards=8)
    members = observe({}, [other], 0.0)
    ours = observe({}, [LeaseRecord(shard_lease_name(s), "1", "a", LEASE) for s in (0, 1)], 0.0)
    plan = plan_shards(identity="a", count=4, owned=frozenset({0, 1}), members=members, shards=ours, now=1.0)
    assert (plan.disagreeing, plan.release, plan.acquire) == (("b",), (0, 1), ())
    plan = plan_shards(identity="a", count=4, owned=frozenset(), members=members, shards={}, now=LEASE)
    assert (plan.disagreeing, len(plan.acquire)) == ((), 4)  # it stopped renewing: gone
    same = observe({}, [LeaseRecord(member_lease_name("b"), "1", "b", LEASE, shards=4)], 0.0)
    plan = plan_shards(identity="a", count=4, owned=frozenset(), members=same, shards={}, now=1.0)
    assert plan.disagreeing == () and len(plan.acquire) == 2
