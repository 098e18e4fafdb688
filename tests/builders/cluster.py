"""An in-memory stand-in for the API server, as `KubeClient` speaks to it, and an operator context
over it: enough to drive the AgentRun reconcile without a cluster."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, cast

from jesus.api.registration import MeteredSpend
from jesus.controllers.context import OperatorContext
from jesus.controllers.ledger import BudgetLedger
from jesus.kube import ConflictError, JsonObject, KubeClient, NotFoundError
from jesus.kube.client import redact_free_text
from jesus.policy.decision import PolicyEngine

Key = tuple[str, str, str]


class FakeKube:
    """Objects by (kind, namespace, name), with resourceVersions and optimistic concurrency."""

    def __init__(self) -> None:
        self.objects: dict[Key, JsonObject] = {}
        self.events: list[tuple[str, str, str, str]] = []
        """(involved name, type, reason, message)"""
        self.deleted: list[Key] = []
        self._versions = itertools.count(1)
        self.redact: Callable[[str], str] = str
        """Applied as `KubeClient` applies it: Event messages and statuses' free text."""

    def redact_status(self, status: JsonObject) -> JsonObject:
        return redact_free_text(status, self.redact)

    def put(self, obj: JsonObject) -> JsonObject:
        """Store `obj` as the API server would (a new resourceVersion, a uid)."""
        stored = copy.deepcopy(obj)
        metadata = stored.setdefault("metadata", {})
        metadata.setdefault("uid", f"uid-{metadata['name']}")
        metadata["resourceVersion"] = str(next(self._versions))
        self.objects[(stored["kind"], metadata.get("namespace") or "", metadata["name"])] = stored
        return copy.deepcopy(stored)

    def find(self, kind: str, namespace: str, name: str) -> JsonObject | None:
        """The stored object (a copy), or None."""
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def get(self, kind: str, namespace: str | None, name: str) -> JsonObject | None:
        return self.find(kind, namespace or "", name)

    async def list(
        self, kind: str, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[JsonObject]:
        return [
            copy.deepcopy(obj)
            for (k, ns, _), obj in self.objects.items()
            if k == kind
            and namespace in (None, ns)
            and all(obj["metadata"].get("labels", {}).get(a) == b for a, b in (labels or {}).items())
        ]

    async def create(self, obj: JsonObject) -> JsonObject:
        if (obj["kind"], obj["metadata"].get("namespace") or "", obj["metadata"]["name"]) in self.objects:
            raise ConflictError(409, "AlreadyExists", f"{obj['kind']} {obj['metadata']['name']} exists")
        return self.put(obj)

    async def create_or_get(self, obj: JsonObject) -> tuple[JsonObject, bool]:
        try:
            return await self.create(obj), True
        except ConflictError:
            found = self.find(obj["kind"], obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
            assert found is not None
            return found, False

    async def patch(self, kind: str, namespace: str | None, name: str, patch: JsonObject) -> JsonObject:
        """A JSON merge patch: objects merge, everything else (lists too) is replaced, None deletes."""
        current = self.objects.get((kind, namespace or "", name))
        if current is None:
            raise NotFoundError(404, "NotFound", f"{kind} {name} does not exist")
        return self.put(_merge(current, patch))

    async def replace_status(self, obj: JsonObject) -> JsonObject:
        metadata = obj["metadata"]
        key = (obj["kind"], metadata.get("namespace") or "", metadata["name"])
        current = self.objects.get(key)
        if current is None:
            raise NotFoundError(404, "NotFound", f"{key} does not exist")
        if current["metadata"]["resourceVersion"] != metadata.get("resourceVersion"):
            raise ConflictError(409, "Conflict", f"{key} changed")
        status = obj.get("status")
        return self.put({**current, "status": self.redact_status(status) if status is not None else None})

    async def delete(
        self, kind: str, namespace: str | None, name: str, *, propagation: str = "Background"
    ) -> bool:
        self.deleted.append((kind, namespace or "", name))
        return self.objects.pop((kind, namespace or "", name), None) is not None

    async def event(self, involved: JsonObject, *, type_: str, reason: str, message: str) -> None:
        self.events.append((involved["metadata"]["name"], type_, reason, self.redact(message)))


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return copy.deepcopy(patch)
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge(merged.get(key), value)
    return merged


class FakeRouter:
    """Issues a token per registration."""

    def __init__(self) -> None:
        self.registered: list[str] = []
        self.revoked: list[str] = []
        # What the router metered per token, answered when it is revoked; unknown tokens answer None.
        self.metered: dict[str, MeteredSpend] = {}

    async def register(self, run: Any) -> str:
        self.registered.append(run.metadata.name)
        return f"token-{len(self.registered)}"

    async def revoke(self, token: str) -> MeteredSpend | None:
        self.revoked.append(token)
        return self.metered.get(token)


def operator_context(kube: FakeKube, policy: PolicyEngine, clock: Callable[[], datetime]) -> OperatorContext:
    """An OperatorContext over `kube`, with the real ledger; the cache is filled with `sync_cache`."""
    client = cast(KubeClient, kube)
    return OperatorContext(
        kube=client, policy=policy, ledger=BudgetLedger(client, clock), router=FakeRouter(), clock=clock
    )


def sync_cache(context: OperatorContext, kube: FakeKube) -> None:
    """Feed the cache what the watches would have reported by now."""
    for kind in ("Budget", "RoutePolicy", "ModelAdapter"):
        context.cache.of(kind).replace_all([o for (k, _, _), o in kube.objects.items() if k == kind])


def handler(registry: Any, id_: str) -> Any:
    """The function kopf registered under `id_` (a kopf.OperatorRegistry), to call a handler directly."""
    for group in (registry._changing, registry._watching, registry._spawning):
        for found in group.get_all_handlers():
            if found.id == id_:
                return found.fn
    raise AssertionError(f"no handler {id_}")
