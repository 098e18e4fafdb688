"""Which runs this operator replica reconciles: `AllShards` when it runs alone, `ShardLeases` when
several active replicas split the runs into shards (`jesus operator --shards N`, docs/scale.md, ADR 0032).

`ShardLeases` keeps coordination.k8s.io/v1 Leases in the operator's namespace: one member Lease per
replica (`jesus-operator-member-<identity>`, "I am alive") and one Lease per shard
(`jesus-operator-shard-<i>`, "I reconcile these runs"). Every few seconds it lists them, renews its own,
and performs what `jesus.logic.shards.plan_shards` decides. Every write carries the resourceVersion it
read, so two replicas never both win a Lease; a conflict means someone else moved, and the next pass
reads again.

The Leases divide the work; they are not what makes it exactly-once. A replica that is cut off stops
owning a shard `lease_seconds - renew_seconds` after its last successful renewal, before any other may
take it (`lease_seconds` after the last change it saw, on its own clock). Anything a slow replica still
writes after that is caught by the API server: deterministic Job names, resourceVersion preconditions on
status and Budget writes, ledger operations keyed by the run's UID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from jesus.kube import ConflictError, JsonObject, KubeClient, KubeError, NotFoundError
from jesus.logic.clock import Clock, system_clock
from jesus.logic.shards import (
    MAX_LEASE_SECONDS,
    MEMBER_PREFIX,
    SHARD_PREFIX,
    SHARDS_ANNOTATION,
    Seen,
    check_count,
    check_identity,
    member_lease_name,
    observe,
    plan_shards,
    read_lease,
    shard_lease_name,
    shard_of,
)

logger = logging.getLogger(__name__)

ShardCallback = Callable[[int], Awaitable[None]]
"""Told a shard's number when this replica gained it (re-enqueue its runs) or lost it (drain them)."""

LEASE_LABELS = {"app.kubernetes.io/name": "jesus", "app.kubernetes.io/component": "operator-shards"}


class ShardOwnership(Protocol):
    """What the reconcilers ask: is this run ours? (`AllShards` or `ShardLeases`)."""

    def owns(self, namespace: str, name: str) -> bool:
        """Whether this replica reconciles the run `namespace/name` now; cheap, called per event."""
        ...

    def owned(self) -> frozenset[int]:
        """The shards this replica reconciles now."""
        ...

    async def start(self) -> None:
        """Begin owning (the first pass done before it returns)."""
        ...

    async def stop(self) -> None:
        """Stop owning, handing every shard over cleanly."""
        ...


class AllShards:
    """A replica that runs alone owns every run: no Leases, no API traffic (the default)."""

    count = 1

    def owns(self, namespace: str, name: str) -> bool:
        """Always: there is no one else."""
        return True

    def owned(self) -> frozenset[int]:
        """The one shard."""
        return frozenset({0})

    async def start(self) -> None:
        """Nothing to do."""

    async def stop(self) -> None:
        """Nothing to hand over."""


class ShardLeases:
    """This replica's share of `count` shards, held through Leases in `namespace` (see the module
    docstring). `clock` is monotonic seconds (`time.monotonic`); `wall` only stamps renewTime for people."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        identity: str,
        count: int,
        clock: Callable[[], float],
        *,
        lease_seconds: float = 15,
        renew_seconds: float = 5,
        on_acquired: ShardCallback,
        on_released: ShardCallback,
        wall: Clock = system_clock,
    ) -> None:
        if renew_seconds <= 0 or lease_seconds < 2 * renew_seconds or lease_seconds > MAX_LEASE_SECONDS:
            raise ValueError(
                f"lease_seconds {lease_seconds} must be at least twice renew_seconds {renew_seconds} "
                f"(renew_seconds above 0) and at most {MAX_LEASE_SECONDS:.0f}"
            )
        if not namespace:
            raise ValueError("--lease-namespace must name the namespace that holds the operator's Leases")
        self.kube = kube
        self.namespace = namespace
        self.identity = check_identity(identity)
        self.count = check_count(count)
        self.clock = clock
        self.wall = wall
        self.lease_seconds = float(lease_seconds)
        self.renew_seconds = float(renew_seconds)
        self.fence_seconds = self.lease_seconds - self.renew_seconds
        """How long after our last successful renewal we stop owning a shard: before any other replica
        may take it (a lease duration after it first saw that renewal)."""
        self.on_acquired = on_acquired
        self.on_released = on_released
        self._renewed: dict[int, float] = {}  # shard -> our clock just before its last successful write
        self._active: set[int] = set()  # shards the lead was told about with on_acquired
        self._seen: dict[str, Seen] = {}
        self._objects: dict[str, JsonObject] = {}  # the newest copy we read or wrote of each Lease
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # What the reconcilers call.

    def owns(self, namespace: str, name: str) -> bool:
        """Whether the run's shard is ours and renewed recently enough (fenced: see fence_seconds)."""
        return self._fresh(shard_of(namespace, name, self.count), self.clock())

    def owned(self) -> frozenset[int]:
        """The shards we own now."""
        now = self.clock()
        return frozenset(s for s in self._renewed if self._fresh(s, now))

    def _fresh(self, shard: int, now: float) -> bool:
        renewed = self._renewed.get(shard)
        return renewed is not None and now - renewed < self.fence_seconds

    # The loop.

    async def start(self) -> None:
        """One pass (so a replica alone owns its shards when this returns), then one every renew_seconds."""
        await self.tick()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="shard-leases")

    async def stop(self) -> None:
        """Stop the loop and hand every shard over: stop owning it, await on_released, clear its holder;
        then delete our member Lease. Errors are logged: the others take over on expiry anyway."""
        async with self._lock:  # a pass in progress finishes first: nothing is left half-written
            if self._task is not None:
                self._task.cancel()  # it sleeps, or waits for the lock
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None
            for shard in sorted(self._active | set(self._renewed)):
                await self._drop(shard, "Stopping")
                await self._write_holder(shard_lease_name(shard), None)
            member = self._objects.get(member_lease_name(self.identity))
            if member is not None and _holder(member) == self.identity:
                with contextlib.suppress(KubeError):
                    await self.kube.delete(
                        "Lease", self.namespace, member_lease_name(self.identity),
                        resource_version=member["metadata"].get("resourceVersion"),
                    )  # fmt: skip

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                await self.tick()
            except Exception as exc:  # the API server away, a callback's bug: the loop must go on
                logger.warning("Failed to renew shard leases identity=%s error=%s", self.identity, exc)

    async def tick(self) -> None:
        """One pass: read the Leases, renew ours, then release, lose and acquire as planned."""
        async with self._lock:
            leases = await self.kube.list("Lease", self.namespace)
            read_at = self.clock()  # after the answer: we saw these versions no sooner than this
            self._objects = {
                name: obj
                for obj in leases
                if isinstance(name := (obj.get("metadata") or {}).get("name"), str)
                and name.startswith((MEMBER_PREFIX, SHARD_PREFIX))
            }
            records = [read_lease(obj, self.lease_seconds) for obj in self._objects.values()]
            self._seen = observe(self._seen, [r for r in records if r is not None], read_at)
            # The member and every fresh shard at once: one slow answer must not make the rest late.
            fresh = [shard for shard in sorted(self._renewed) if self._fresh(shard, self.clock())]
            await asyncio.gather(self._renew_member(), *(self._renew_shard(shard) for shard in fresh))
            now = self.clock()
            for shard in sorted(self._active | set(self._renewed)):
                if not self._fresh(shard, now):
                    await self._drop(shard, "Fenced")  # not renewed in time: another may take it soon
            plan = plan_shards(
                identity=self.identity,
                count=self.count,
                owned=self.owned(),
                members={n: s for n, s in self._seen.items() if n.startswith(MEMBER_PREFIX)},
                shards={n: s for n, s in self._seen.items() if n.startswith(SHARD_PREFIX)},
                now=self.clock(),
            )
            if plan.blocked:
                logger.warning(
                    "Found our member lease held by another replica lease=%s identity=%s",
                    member_lease_name(self.identity),
                    self.identity,
                )
            if plan.disagreeing:
                logger.warning(
                    "Found replicas with another shard count, owning nothing until they are gone "
                    "replicas=%s count=%d identity=%s",
                    ",".join(plan.disagreeing),
                    self.count,
                    self.identity,
                )
            for shard in plan.lost:
                await self._drop(shard, "Lost")
            for shard in plan.release:
                await self._drop(shard, "Released")
                await self._write_holder(shard_lease_name(shard), None)
            for shard in plan.acquire:
                await self._acquire(shard)
            for name in plan.expired_members:
                await self._delete_expired(name)

    # Steps.

    async def _renew_member(self) -> None:
        name = member_lease_name(self.identity)
        obj, seen = self._objects.get(name), self._seen.get(name)
        held = obj is not None and _holder(obj) not in ("", self.identity)
        if held and seen is not None and seen.live(self.clock()):
            return  # another live holder: plan_shards says blocked
        await self._write_holder(name, self.identity)

    async def _renew_shard(self, shard: int) -> None:
        name = shard_lease_name(shard)
        obj = self._objects.get(name)
        if obj is None or _holder(obj) != self.identity:
            return  # lost: the plan says so
        started = self.clock()
        if await self._write_holder(name, self.identity):
            self._renewed[shard] = started

    async def _acquire(self, shard: int) -> None:
        started = self.clock()
        if not await self._write_holder(shard_lease_name(shard), self.identity):
            return
        self._renewed[shard] = started
        self._active.add(shard)
        logger.info("Acquired shard shard=%d count=%d identity=%s", shard, self.count, self.identity)
        try:
            await self.on_acquired(shard)
        except Exception:
            logger.exception("Failed to take over shard shard=%d identity=%s", shard, self.identity)

    async def _drop(self, shard: int, why: str) -> None:
        """Stop owning `shard` here, then tell the lead (which drains its in-flight work)."""
        self._renewed.pop(shard, None)
        if shard not in self._active:
            return
        self._active.discard(shard)
        logger.info("%s shard shard=%d count=%d identity=%s", why, shard, self.count, self.identity)
        try:
            await self.on_released(shard)
        except Exception:
            logger.exception("Failed to hand over shard shard=%d identity=%s", shard, self.identity)

    async def _write_holder(self, name: str, holder: str | None) -> bool:
        """Write `name` with `holder` (None: no holder), preconditioned on the version we last saw;
        whether it was written. A conflict or another API error is logged and the next pass reads again."""
        existing = self._objects.get(name)
        obj = self._lease(name, holder, existing)
        try:
            if existing is None:
                if holder is None:
                    return True
                written = await self.kube.create(obj)
            else:
                written = await self.kube.replace(obj)
        except ConflictError:
            logger.info("Found lease moved lease=%s identity=%s", name, self.identity)
            return False
        except (NotFoundError, KubeError) as exc:
            logger.warning("Failed to write lease lease=%s identity=%s error=%s", name, self.identity, exc)
            return False
        self._objects[name] = written
        return True

    def _lease(self, name: str, holder: str | None, existing: JsonObject | None) -> JsonObject:
        now = _micro_time(self.wall())
        metadata: JsonObject = {"name": name, "namespace": self.namespace, "labels": dict(LEASE_LABELS)}
        spec: JsonObject = {}
        if existing is not None:
            metadata = {**(existing.get("metadata") or {}), "name": name, "namespace": self.namespace}
            old = existing.get("spec")
            spec = dict(old) if isinstance(old, dict) else {}
        previous = _holder(existing) if existing is not None else ""
        spec.pop("holderIdentity", None)
        if name.startswith(MEMBER_PREFIX):
            annotations = metadata.get("annotations")
            annotations = dict(annotations) if isinstance(annotations, dict) else {}
            metadata["annotations"] = annotations | {SHARDS_ANNOTATION: str(self.count)}
        if holder is not None:
            spec["holderIdentity"] = holder
            spec["leaseDurationSeconds"] = math.ceil(self.lease_seconds)
            spec["renewTime"] = now
            if previous != holder:
                spec["acquireTime"] = now
                known = _transitions(spec.get("leaseTransitions"))
                spec["leaseTransitions"] = known + 1 if previous else known
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    async def _delete_expired(self, name: str) -> None:
        """Delete the member Lease of a replica that stopped renewing it, if it is the version we saw."""
        obj = self._objects.get(name)
        if obj is None:
            return
        try:
            await self.kube.delete(
                "Lease", self.namespace, name, resource_version=obj["metadata"].get("resourceVersion")
            )
        except KubeError:
            return  # renewed after all, or deleted by another: nothing to do
        logger.info("Deleted expired member lease lease=%s identity=%s", name, self.identity)


def _holder(obj: JsonObject) -> str:
    spec = obj.get("spec")
    holder = spec.get("holderIdentity") if isinstance(spec, dict) else None
    return holder if isinstance(holder, str) else ""


def _transitions(value: object) -> int:
    """A Lease's leaseTransitions as written, 0 when it is not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _micro_time(moment: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def shard_ownership(
    kube: KubeClient,
    *,
    shards: int | None,
    identity: str | None,
    lease_namespace: str | None,
    clock: Callable[[], float],
    on_acquired: ShardCallback,
    on_released: ShardCallback,
) -> ShardOwnership:
    """What `jesus operator`'s flags ask for: `AllShards` without `--shards`, else `ShardLeases`, which
    needs `--identity` and `--lease-namespace` too (ValueError naming the missing flag)."""
    if shards is None:
        if identity or lease_namespace:
            raise ValueError("--identity and --lease-namespace need --shards (several active replicas)")
        return AllShards()
    if not identity:
        raise ValueError("--shards needs --identity: the replica's name among its peers (the pod name)")
    if not lease_namespace:
        raise ValueError("--shards needs --lease-namespace: where the replicas' Leases live")
    return ShardLeases(
        kube, lease_namespace, identity, shards, clock, on_acquired=on_acquired, on_released=on_released
    )
