"""Which operator replica reconciles which runs: shards of runs by hash, held through Leases.

Pure: `shard_of` (a run's shard), `read_lease` (a Lease as the decision reads it, whatever a careless
or hostile writer put in it), `observe` (when each Lease was last seen to change, on OUR clock) and
`plan_shards` (which shards to take and which to give up). `jesus.controllers.shards` reads and writes
the Leases and performs the plan (docs/scale.md, ADR 0032).

Expiry follows client-go's leader election, not the Lease's own timestamps: another holder's Lease is
expired only when its resourceVersion has not changed for a lease duration on our own monotonic clock
since we first saw that version. A clock that is skewed or jumps on another replica cannot make two
replicas hold one shard; `renewTime` is written for people and never read back.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MEMBER_PREFIX = "jesus-operator-member-"
SHARD_PREFIX = "jesus-operator-shard-"
MAX_LEASE_SECONDS = 300.0
"""The longest lease duration another replica's Lease can make us wait: a careless or hostile
`leaseDurationSeconds` cannot keep a shard unowned for longer than this."""
MAX_SHARDS = 1024
SHARDS_ANNOTATION = "jesus.dev/shards"
"""On a member Lease: the shard count its replica divides the runs by. Replicas that disagree (a rollout
that changes --shards) would each own a different run set under the same shard numbers, so a replica
that sees a live member with another count owns nothing until that member is gone."""
# A Lease is named like any object (a DNS subdomain); the identity becomes part of such a name.
_IDENTITY = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_IDENTITY_MAX = 253 - len(MEMBER_PREFIX)


def shard_of(namespace: str, name: str, count: int) -> int:
    """The shard of the run `namespace/name` among `count`: sha256 of the pair, not Python's hash(),
    so every replica and every restart agrees."""
    if count < 1:
        raise ValueError(f"the shard count must be at least 1, not {count}")
    digest = hashlib.sha256(f"{namespace}/{name}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


def check_identity(identity: str) -> str:
    """`identity` when it can name a member Lease (a pod name can); ValueError naming it otherwise."""
    if not identity or len(identity) > _IDENTITY_MAX or not _IDENTITY.match(identity):
        raise ValueError(
            f"--identity {identity!r} must be lowercase letters, digits, '-' and '.', at most "
            f"{_IDENTITY_MAX} characters, as a pod name is"
        )
    return identity


def check_count(count: int) -> int:
    """`count` when it is a usable number of shards; ValueError naming it otherwise."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"--shards {count!r} must be a whole number from 1 to {MAX_SHARDS}")
    return count


def member_lease_name(identity: str) -> str:
    """The Lease that says replica `identity` is alive."""
    return MEMBER_PREFIX + identity


def shard_lease_name(shard: int) -> str:
    """The Lease whose holder reconciles shard `shard`."""
    return f"{SHARD_PREFIX}{shard}"


def shard_index(lease_name: str, count: int) -> int | None:
    """The shard a Lease name stands for, or None when it is no shard Lease of `count` (another name,
    a non-canonical number such as "01", one beyond the count)."""
    if not lease_name.startswith(SHARD_PREFIX):
        return None
    text = lease_name[len(SHARD_PREFIX) :]
    if not text.isascii() or not text.isdigit() or text != str(int(text)):
        return None
    index = int(text)
    return index if index < count else None


@dataclass(frozen=True)
class LeaseRecord:
    """A Lease as the decision reads it: its name, resourceVersion, holder ("" for none) and how long
    a holder's silence must last before it is expired (see `read_lease`)."""

    name: str
    version: str
    holder: str
    duration_seconds: float
    shards: int | None = None
    """A member Lease's SHARDS_ANNOTATION; None when absent or not a count."""


def lease_duration(value: Any, floor: float) -> float:
    """The wait a Lease's `leaseDurationSeconds` asks for, held between our own lease duration
    (`floor`: a 0, a negative or a missing value cannot make us take over sooner) and
    MAX_LEASE_SECONDS (a huge one cannot keep a shard unowned for ever)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return floor
    return min(max(float(value), floor), max(MAX_LEASE_SECONDS, floor))


def read_lease(obj: Mapping[str, Any], floor: float) -> LeaseRecord | None:
    """The LeaseRecord of a Lease object, None when it has no name or resourceVersion. A holder that
    is not a string counts as none; renewTime is not read at all (see the module docstring)."""
    metadata = obj.get("metadata")
    spec = obj.get("spec")
    if not isinstance(metadata, Mapping):
        return None
    name, version = metadata.get("name"), metadata.get("resourceVersion")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        return None
    spec = spec if isinstance(spec, Mapping) else {}
    holder = spec.get("holderIdentity")
    annotations = metadata.get("annotations")
    shards = annotations.get(SHARDS_ANNOTATION) if isinstance(annotations, Mapping) else None
    return LeaseRecord(
        name=name,
        version=version,
        holder=holder if isinstance(holder, str) else "",
        duration_seconds=lease_duration(spec.get("leaseDurationSeconds"), floor),
        shards=int(shards) if isinstance(shards, str) and shards.isascii() and shards.isdigit() else None,
    )


@dataclass(frozen=True)
class Seen:
    """What we know of one Lease: its record, when (our clock) we first saw this version, and whether
    we have seen its holder renew it (a new version from the same holder) while we watched."""

    record: LeaseRecord
    since: float
    renewed: bool = False

    def live(self, now: float) -> bool:
        """Held, and changed within its duration as we observed it."""
        return bool(self.record.holder) and now - self.since < self.record.duration_seconds


def observe(previous: Mapping[str, Seen], leases: Iterable[LeaseRecord], now: float) -> dict[str, Seen]:
    """The new observations after reading `leases` at `now`: a Lease whose version did not change keeps
    the moment it was first seen; a changed or new one is seen from `now`. Leases not read are dropped."""
    seen: dict[str, Seen] = {}
    for record in leases:
        before = previous.get(record.name)
        if before is not None and before.record.version == record.version:
            seen[record.name] = Seen(record, before.since, before.renewed)
        elif before is not None and before.record.holder == record.holder and record.holder:
            seen[record.name] = Seen(record, now, renewed=True)
        else:
            seen[record.name] = Seen(record, now)
    return seen


@dataclass(frozen=True)
class ShardPlan:
    """What one pass of the lease loop does: shards to take (in order), to give up, and ones already
    lost to another holder (stop at once, nothing to write); member Leases of dead replicas to delete;
    the live members counted; whether another live holder has our member Lease (`blocked`), and the
    live members that divide by another shard count (`disagreeing`): either way we own nothing."""

    acquire: tuple[int, ...] = ()
    release: tuple[int, ...] = ()
    lost: tuple[int, ...] = ()
    expired_members: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    blocked: bool = False
    disagreeing: tuple[str, ...] = ()


def preference(identity: str, shard: int) -> bytes:
    """How much `identity` wants `shard` (lower first): rendezvous hashing, so replicas reaching for
    free shards at the same moment mostly reach for different ones."""
    return hashlib.sha256(f"{identity}\x00{shard}".encode()).digest()


def _members(identity: str, members: Mapping[str, Seen], now: float, *, confirmed: bool) -> set[str]:
    """The live members other than us: a member Lease named for its holder, live as we observed it
    (and, when `confirmed`, seen renewing: a stale Lease of a dead replica never counts)."""
    live: set[str] = set()
    for name, seen in members.items():
        holder = seen.record.holder
        if holder == identity or name != member_lease_name(holder) or not seen.live(now):
            continue
        if confirmed and not seen.renewed:
            continue
        live.add(holder)
    return live


def plan_shards(
    *,
    identity: str,
    count: int,
    owned: frozenset[int],
    members: Mapping[str, Seen],
    shards: Mapping[str, Seen],
    now: float,
) -> ShardPlan:
    """Which shards `identity` takes and gives up, given what it owns (fresh, by its own renewals) and
    the member and shard Leases as observed (`observe`), at `now` on its own clock.

    Fair share: with n live members, each holds floor(count/n) or ceil(count/n). Take free shards up
    to ceil (only up to floor while another live member holds fewer than floor); give up shards above
    ceil, or above floor while another member holds fewer than floor, counting only members seen
    renewing, so a stale Lease of a dead replica never makes us give up work. Never take a shard whose
    other holder is live as we observed it.
    """
    mine = member_lease_name(identity)
    own_member = members.get(mine)
    blocked = (
        own_member is not None and own_member.record.holder not in ("", identity) and own_member.live(now)
    )
    expired = tuple(sorted(name for name, seen in members.items() if name != mine and not seen.live(now)))
    holdings: dict[str, int] = {}
    held_by_other: set[int] = set()
    lost: list[int] = []
    for shard in range(count):
        seen = shards.get(shard_lease_name(shard))
        holder = seen.record.holder if seen is not None else ""
        if shard in owned and holder != identity:
            lost.append(shard)  # deleted, or taken over: we are not its holder any more
        if holder and holder != identity and seen is not None and seen.live(now):
            held_by_other.add(shard)
            holdings[holder] = holdings.get(holder, 0) + 1
    kept = owned - set(lost)
    disagreeing = tuple(
        sorted(
            seen.record.holder
            for name, seen in members.items()
            if name != mine
            and seen.live(now)
            and seen.record.shards is not None
            and seen.record.shards != count
        )
    )
    if blocked or disagreeing:
        return ShardPlan(
            release=tuple(sorted(kept)),
            lost=tuple(lost),
            expired_members=expired,
            blocked=blocked,
            disagreeing=disagreeing,
        )

    def by_preference(candidates: Iterable[int]) -> list[int]:
        return sorted(candidates, key=lambda s: preference(identity, s))

    release: list[int] = []
    confirmed = _members(identity, members, now, confirmed=True)
    n = len(confirmed) + 1
    floor, ceil = count // n, -(-count // n)
    needy = any(holdings.get(member, 0) < floor for member in confirmed)
    keep = floor if needy else ceil
    if len(kept) > keep:
        release = by_preference(kept)[keep - len(kept) :]  # the least wanted go
    possible = _members(identity, members, now, confirmed=False)
    n = len(possible) + 1
    floor, ceil = count // n, -(-count // n)
    needy = any(holdings.get(member, 0) < floor for member in possible)
    target = floor if needy else ceil
    holding = len(kept) - len(release)
    acquire: list[int] = []
    if not release and holding < target:
        free = [s for s in range(count) if s not in owned and s not in held_by_other]
        acquire = by_preference(free)[: target - holding]
    return ShardPlan(
        acquire=tuple(acquire),
        release=tuple(sorted(release)),
        lost=tuple(lost),
        expired_members=expired,
        members=tuple(sorted({identity, *possible})),
    )
