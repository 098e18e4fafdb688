"""What the operator knows of Budgets, RoutePolicies and ModelAdapters, kept current by their watches.

Admitting a run reads every Budget, the run's RoutePolicy and the adapters of its namespace. Asking the
API server each time made admission cost a LIST of every Budget (each with its reservations) per run;
here the operator lists each kind once at start-up and then follows the watch events Kopf already
receives, so a reconcile reads them from memory. An object is parsed into its model once per
resourceVersion, the first time a reconcile asks for it.

The ledger stays authoritative for money: it reads the Budget from the API server before every write,
so a cache a few milliseconds behind can make the policy see slightly older figures, never overspend.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import kopf
import pydantic

from jesus.api.budget import Budget
from jesus.api.common import GROUP, VERSION
from jesus.api.lesson import Lesson
from jesus.api.modeladapter import ModelAdapter
from jesus.api.routepolicy import RoutePolicy
from jesus.kube import JsonObject, KubeClient, KubeError

if TYPE_CHECKING:
    from jesus.controllers.context import OperatorContext

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=pydantic.BaseModel)


@dataclass
class _Entry(Generic[M]):
    obj: JsonObject
    model: M | None = None
    error: pydantic.ValidationError | None = None


@dataclass
class KindCache(Generic[M]):
    """The live objects of one kind, by namespace and name."""

    kind: str
    model_type: type[M]
    _entries: dict[tuple[str, str], _Entry[M]] = field(default_factory=dict)

    def put(self, obj: JsonObject) -> None:
        """Remember `obj` as the current state of its object (a watch event or a fresh read)."""
        metadata = obj.get("metadata") or {}
        key = (metadata.get("namespace") or "", metadata.get("name") or "")
        entry = self._entries.get(key)
        if entry is not None and entry.obj["metadata"].get("resourceVersion") == metadata.get(
            "resourceVersion"
        ):
            return
        self._entries[key] = _Entry(obj)

    def remove(self, namespace: str, name: str) -> None:
        self._entries.pop((namespace, name), None)

    def raw(self, namespace: str, name: str) -> JsonObject | None:
        """The object as the API server sent it, or None when it does not exist."""
        entry = self._entries.get((namespace, name))
        return entry.obj if entry is not None else None

    def version(self, namespace: str, name: str) -> str | None:
        """The resourceVersion of the object, or None when it does not exist."""
        entry = self._entries.get((namespace, name))
        return entry.obj["metadata"].get("resourceVersion") if entry is not None else None

    def versions(self, namespace: str | None = None) -> dict[tuple[str, str], str]:
        """Every object's resourceVersion (of `namespace`, when given), by namespace and name."""
        return {
            key: entry.obj["metadata"].get("resourceVersion", "")
            for key, entry in self._entries.items()
            if namespace is None or key[0] == namespace
        }

    def get(self, namespace: str, name: str) -> M | None:
        """The parsed object, or None when it does not exist; pydantic.ValidationError when invalid."""
        entry = self._entries.get((namespace, name))
        return self._parse(entry) if entry is not None else None

    def valid(self, namespace: str | None = None) -> list[M]:
        """Every valid object (of `namespace`, when given); invalid ones are left out (logged once)."""
        return list(self._valid(namespace).values())

    def by_name(self, namespace: str) -> dict[str, M]:
        """The valid objects of `namespace` by name."""
        return {name: model for (_, name), model in self._valid(namespace).items()}

    def _valid(self, namespace: str | None) -> dict[tuple[str, str], M]:
        found: dict[tuple[str, str], M] = {}
        for key, entry in self._entries.items():
            if namespace is not None and key[0] != namespace:
                continue
            try:
                found[key] = self._parse(entry)
            except pydantic.ValidationError:
                continue  # logged once, when it was parsed; its own reconciler reports why
        return found

    def names_referring(self, namespace: str, adapter: str) -> list[str]:
        """Names of the objects in `namespace` whose spec.chain names `adapter` (RoutePolicies)."""
        return [
            name
            for (ns, name), entry in self._entries.items()
            if ns == namespace
            and any(e.get("adapterRef") == adapter for e in entry.obj.get("spec", {}).get("chain", []))
        ]

    def replace_all(self, items: Iterable[JsonObject]) -> None:
        """Start over from a full listing."""
        self._entries.clear()
        for item in items:
            self.put(item)

    def _parse(self, entry: _Entry[M]) -> M:
        if entry.model is None and entry.error is None:
            try:
                entry.model = self.model_type.model_validate(entry.obj)
            except pydantic.ValidationError as exc:
                entry.error = exc
                metadata = entry.obj.get("metadata") or {}
                logger.warning(
                    "Invalid %s namespace=%s name=%s error=%s",
                    self.kind,
                    metadata.get("namespace"),
                    metadata.get("name"),
                    exc,
                )
        if entry.error is not None:
            raise entry.error
        assert entry.model is not None
        return entry.model


@dataclass
class ClusterCache:
    """The kinds admission reads, each from one listing at start-up and the watch after it."""

    budgets: KindCache[Budget] = field(default_factory=lambda: KindCache("Budget", Budget))
    route_policies: KindCache[RoutePolicy] = field(
        default_factory=lambda: KindCache("RoutePolicy", RoutePolicy)
    )
    adapters: KindCache[ModelAdapter] = field(default_factory=lambda: KindCache("ModelAdapter", ModelAdapter))
    lessons: KindCache[Lesson] = field(default_factory=lambda: KindCache("Lesson", Lesson))

    def of(self, kind: str) -> KindCache[Any]:
        caches: dict[str, KindCache[Any]] = {
            "Budget": self.budgets,
            "RoutePolicy": self.route_policies,
            "ModelAdapter": self.adapters,
            "Lesson": self.lessons,
        }
        return caches[kind]

    async def prime(
        self, kube: KubeClient, namespaces: Iterable[str] = (), *, retry_seconds: float = 0.5
    ) -> None:
        """List every cached kind once (cluster-wide, or in `namespaces`) before the watches start.

        An API server that is busy, restarting or still serving a CRD it has just installed is waited
        for, with a log line per try, as Kopf waits for its watches; the operator does not start
        deciding with an empty cache.
        """
        scopes: list[str | None] = list(namespaces) or [None]
        for kind in ("Budget", "RoutePolicy", "ModelAdapter", "Lesson"):
            delay = retry_seconds
            while True:
                try:
                    items: list[JsonObject] = []
                    for namespace in scopes:
                        items.extend(await kube.list(kind, namespace))
                    break
                except KubeError as exc:
                    logger.warning("Waiting to list %s error=%s retry_in=%.1fs", kind, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            self.of(kind).replace_all(items)


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """Follow the watch events of the cached kinds (registered before every controller's handlers)."""
    cache = context.cache
    for plural, kind in (
        ("budgets", "Budget"),
        ("routepolicies", "RoutePolicy"),
        ("modeladapters", "ModelAdapter"),
        ("lessons", "Lesson"),
    ):
        _follow(registry, cache.of(kind), plural)


def _follow(registry: kopf.OperatorRegistry, kind_cache: KindCache[Any], plural: str) -> None:
    @kopf.on.event(GROUP, VERSION, plural, id=f"cache-{plural}", registry=registry)
    def on_event(*, type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            kind_cache.remove(body.metadata.get("namespace") or "", body.metadata.get("name") or "")
        else:
            kind_cache.put(copy.deepcopy(plain(body)))


def plain(body: kopf.Body) -> JsonObject:
    """The event's object as a plain dict (Kopf hands out a read-only view of it)."""
    return {key: body[key] for key in body}
